"""Fitting the face-score head on a trained network kept frozen (a recipe stage after
`trans3dhead train` and `train-visibility`; `trans3dhead train-face-score`).

The head (model/trans3dhead.py FaceScoreHead) is one linear map of the last decoder layer's query
states: does this crop hold a human face, framed as the detector's crops frame one? It is fitted
by logistic regression (L2 on standardised features, the two classes weighted equally) on:

- **faces**: training-split AFLW crops (the validation split and the exclusion lists left out),
  each placed in a larger canvas (edges replicated) and re-cropped with a random scale of 0.9-1.1
  and shift of up to 5 % of the side, the spread of a detector's crops;
- **crops off the face**: training-split crops shifted by half their side along a diagonal;
- **non-faces**: random square crops (15-60 % of the shorter side) of scikit-image's data images
  (split_non_faces: every other one of its non-face images by name; the rest and its cat
  `chelsea` are left for the report) and of textures made here (synthetic_textures: blank, noise,
  stripes, checkers, rings);
- **animal faces** (where face_score.animal_dir is set): every box the detector reports, at a
  lowered threshold, on the detector views of the fitted half of the animal photos
  (training/animals.py: cheetahs, a lion, a raccoon), cropped as the pipeline crops them and
  jittered like the faces.

Report (``face_score_report``), on data the fit never saw: the validation split's faces (as they
are and jittered), the same crops shifted half off the face, random crops of the held-out images,
scikit-image's 100 LFW non-face patches, random crops of the cat and, where the animals are used,
the detector's boxes on the held-out animals (the cat among them) and on a face-like figure (what
a detector reports on non-face images is measured end to end by scripts/measure_face_quality.py
and scripts/measure_non_face.py). AFLW2000-3D is not read.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import torch

from trans3dhead.config import Config
from trans3dhead.data.aflw_crops import AFLWCrops, read_exclusion_lists, read_split
from trans3dhead.errors import Trans3DHeadError
from trans3dhead.evaluation.metrics import roc_auc
from trans3dhead.face_model.frames import extract_crop
from trans3dhead.model.batching import forward_crops
from trans3dhead.model.trans3dhead import FaceScoreHead

# scikit-image's data images that show a person (never negatives) and its one animal (report only)
PERSON_IMAGES = ("astronaut", "camera")
ANIMAL_IMAGES = ("chelsea",)
CANVAS_SCALE, CANVAS_PAD = 2.0, 80  # a 120 crop becomes 240 px inside a 400 px canvas
FACE_BOX = np.array([80.0, 80.0, 320.0, 320.0])  # the crop's own box in that canvas


def non_face_images() -> dict[str, np.ndarray]:
    """scikit-image's data images that show neither a person nor an animal, BGR uint8, by name."""
    try:
        import skimage.data
        import skimage.io
    except ImportError:
        raise Trans3DHeadError("the face-score stage needs scikit-image's data images: "
                               "pip install 'trans3dhead[train]'") from None
    from trans3dhead.fileio import to_bgr_uint8

    root = Path(skimage.data.__file__).parent
    out = {}
    for f in sorted(root.iterdir()):
        if f.suffix in (".png", ".jpg") and f.stem not in PERSON_IMAGES:
            out[f.stem] = to_bgr_uint8(skimage.io.imread(f), "rgb", f.name)
    return out


def split_non_faces(images: dict[str, np.ndarray]) -> tuple[list[str], list[str]]:
    """(training names, held-out names): the non-animal images sorted by name, even positions to
    training, odd ones held out; the animal images are held out too."""
    names = sorted(n for n in images if n not in ANIMAL_IMAGES)
    return names[0::2], names[1::2] + [n for n in sorted(images) if n in ANIMAL_IMAGES]


def synthetic_textures(rng: np.random.Generator, side: int = 360) -> dict[str, np.ndarray]:
    """Face-free images made here: blank, uniform noise, smooth noise at three scales, stripes,
    a checkerboard and rings; (side, side, 3) uint8."""
    out = {f"blank{v}": np.full((side, side, 3), v, np.uint8) for v in (0, 128, 255)}
    out["noise"] = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
    for s in (2, 6, 15):
        n = cv2.GaussianBlur(rng.normal(128, 60, (side, side, 3)), (0, 0), s)
        out[f"smooth_noise{s}"] = np.clip((n - n.mean()) / n.std() * 50 + 128, 0, 255).astype(np.uint8)
    yy, xx = np.mgrid[:side, :side]
    grey = {"stripes": (np.sin(xx / 6.0) > 0) * 255.0, "checker": ((xx // 30 + yy // 30) % 2) * 255.0,
            "rings": 127 + 127 * np.sin(np.hypot(xx - side / 2, yy - side / 2) / 8)}
    out.update({k: np.repeat(v.astype(np.uint8)[..., None], 3, -1) for k, v in grey.items()})
    return out


def detector_views(img: np.ndarray) -> list[np.ndarray]:
    """An image at half, full and double scale (each also mirrored; none over 1400 or under 40 px)
    and turned by -30 and +30 degrees: more chances for a detector to see a face in a non-face image
    (the negatives of scripts/measure_face_quality.py and tests/test_quality.py)."""
    out = []
    for s in (0.5, 1.0, 2.0):
        v = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        if max(v.shape[:2]) > 1400 or min(v.shape[:2]) < 40:
            continue
        out += [v, np.ascontiguousarray(v[:, ::-1])]
    h, w = img.shape[:2]
    for angle in (-30, 30):
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        out.append(cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT))
    return out


def in_canvas(crop: np.ndarray) -> np.ndarray:
    """A face crop scaled by CANVAS_SCALE inside a border of CANVAS_PAD replicated pixels, so that
    crops shifted or scaled around it see plausible surroundings."""
    big = cv2.resize(crop, None, fx=CANVAS_SCALE, fy=CANVAS_SCALE, interpolation=cv2.INTER_LINEAR)
    return cv2.copyMakeBorder(big, CANVAS_PAD, CANVAS_PAD, CANVAS_PAD, CANVAS_PAD, cv2.BORDER_REPLICATE)


def jittered(crop: np.ndarray, rng: np.random.Generator, size: int, max_roll: float = 0.0,
             occlusion: float = 0.0, occluders: list[np.ndarray] | None = None) -> np.ndarray:
    """The face re-cropped with a scale of 0.9-1.1 and a shift of up to 5 % of its side; turned in
    the image plane by up to max_roll degrees (uniform); with probability occlusion, a patch of one
    of the occluders (non-face images) covering 15-40 % of the face pasted over it (a cup, a hand,
    a scarf: real faces are often partly hidden)."""
    canvas = in_canvas(crop)
    face_side = FACE_BOX[2] - FACE_BOX[0]
    if occlusion and occluders and rng.uniform() < occlusion:
        src = occluders[rng.integers(len(occluders))]
        area = rng.uniform(0.15, 0.4) * face_side ** 2
        aspect = np.exp(rng.uniform(-0.7, 0.7))
        w, h = (int(min(face_side, v)) for v in (np.sqrt(area * aspect), np.sqrt(area / aspect)))
        sx, sy = rng.integers(0, src.shape[1] - min(w, src.shape[1]) + 1), rng.integers(0, src.shape[0] - min(h, src.shape[0]) + 1)
        patch = cv2.resize(src[sy:sy + h, sx:sx + w], (w, h))
        x0 = int(FACE_BOX[0] + rng.uniform(0, face_side - w))
        y0 = int(FACE_BOX[1] + rng.uniform(0, face_side - h))
        canvas = canvas.copy()
        canvas[y0:y0 + h, x0:x0 + w] = patch
    if max_roll:
        cx, cy = (float(v) for v in (FACE_BOX[:2] + FACE_BOX[2:]) / 2)
        m = cv2.getRotationMatrix2D((cx, cy), float(rng.uniform(-max_roll, max_roll)), 1.0)
        canvas = cv2.warpAffine(canvas, m, canvas.shape[1::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return extract_crop(canvas, jitter_box(FACE_BOX, rng), size)


def jitter_box(box: np.ndarray, rng: np.random.Generator) -> list[float]:
    """A square box re-drawn with a scale of 0.9-1.1 and a shift of up to 5 % of its side, the
    spread of a detector's crops around a face."""
    side = box[2] - box[0]
    s = side * rng.uniform(0.9, 1.1)
    cx, cy = (box[:2] + box[2:]) / 2 + rng.uniform(-0.05, 0.05, 2) * side
    return [cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2]


def shifted(crop: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """The face's crop box moved by half its side along a random diagonal."""
    d = rng.choice([-1.0, 1.0], 2) * (FACE_BOX[2] - FACE_BOX[0]) / 2
    return extract_crop(in_canvas(crop), FACE_BOX + np.r_[d, d], size)


def detection_crops(image: np.ndarray, detector, size: int, rng: np.random.Generator | None = None,
                    jitters: int = 0) -> list[np.ndarray]:
    """Crops of every face the detector reports on the image's detector views, each as the
    pipeline crops it (the detector's crop policy) and, given rng, jitters more re-cropped with a
    scale of 0.9-1.1 and a shift of up to 5 % of the side."""
    out = []
    for view in detector_views(image):
        for det in detector.detect(view):
            box = detector.crop_box(det)
            out.append(extract_crop(view, box, size))
            out += [extract_crop(view, jitter_box(box, rng), size) for _ in range(jitters if rng is not None else 0)]
    return out


def random_crops(image: np.ndarray, count: int, rng: np.random.Generator, size: int) -> list[np.ndarray]:
    """count random square crops with sides of 15-60 % of the image's shorter side."""
    h, w = image.shape[:2]
    out = []
    for _ in range(count):
        side = rng.uniform(0.15, 0.6) * min(h, w)
        x0, y0 = rng.uniform(0, w - side), rng.uniform(0, h - side)
        out.append(extract_crop(image, [x0, y0, x0 + side, y0 + side], size))
    return out


def score_features(predictor, crops: np.ndarray, batch_size: int = 200) -> np.ndarray:
    """(N, S, S, 3) uint8 BGR -> the face-score head's input features (N, 3 D) of the frozen network."""
    model = predictor.model

    def fn(x):
        return {"f": FaceScoreHead.features(model.forward_queries(x)[2])}

    return forward_crops(fn, crops, batch_size)["f"]


def fit_logistic(features: np.ndarray, labels: np.ndarray, weight_decay: float) -> tuple[np.ndarray, float]:
    """Logistic regression with the classes weighted equally and L2 on the weights of the
    standardised features (L-BFGS, float64) -> (weight (F,), bias) on the raw features."""
    x = torch.from_numpy(np.asarray(features, np.float64))
    y = torch.from_numpy(np.asarray(labels, np.float64))
    mu, sd = x.mean(0), x.std(0) + 1e-6
    z = (x - mu) / sd
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    n_pos, n_neg = float(y.sum()), float((1 - y).sum())
    sample_w = torch.where(y > 0.5, 0.5 / n_pos, 0.5 / n_neg)
    opt = torch.optim.LBFGS([w, b], max_iter=500, tolerance_grad=1e-9, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = (torch.nn.functional.binary_cross_entropy_with_logits(z @ w + b, y, reduction="none") * sample_w).sum()
        loss = loss + weight_decay * (w ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        weight = w / sd
        bias = b - (w * mu / sd).sum()
    return weight.numpy(), float(bias)


def _log(message: str) -> None:
    print(message, flush=True)


def _split_indices(cfg: Config, reader: AFLWCrops) -> tuple[np.ndarray, np.ndarray, list]:
    val_names = read_split(cfg.data.val_split)
    excluded, records = read_exclusion_lists(cfg.data.exclude, val_names)
    names = np.array(reader.names)
    is_val = np.isin(names, sorted(val_names))
    keep = ~np.isin(names, sorted(excluded))
    return np.flatnonzero(keep & ~is_val), np.flatnonzero(keep & is_val), records


def fit_face_score(cfg: Config, payload: dict, log=_log, detector=None) -> tuple[dict, dict]:
    """A trans3dhead weights payload -> (the payload with a fitted face-score head, the report).
    data.limit N (tests, probes): N faces of each kind, read one by one instead of the decoded cache.
    detector: a FaceDetector (inference/detectors) run at face_score.animal_detector_threshold on
    the animal photos; needed where face_score.animal_dir is set (the CLI stage passes the detectors
    of face_score.animal_detectors:
    training code does not import inference)."""
    from trans3dhead.training.datamodule import cached_crops
    from trans3dhead.training.system import code_commit
    from trans3dhead.weights import build_network, build_payload

    if payload["arch"] != "trans3dhead" or not payload["model_config"].get("param_branch", True):
        raise Trans3DHeadError("the face-score head reads a trans3dhead network's landmark and parameter queries; "
                               f"these weights (arch '{payload['arch']}') have no parameter queries")
    f = cfg.face_score
    rng = np.random.default_rng(f.seed)
    size = int(payload["model_config"].get("crop_size", 120))
    state = {k: t for k, t in payload["state_dict"].items() if not k.startswith("model.face_score_head.")}
    predictor = build_network(build_payload("trans3dhead", dict(payload["model_config"], face_score=False), state))
    reader = AFLWCrops(cfg.data.crops_root)
    train_idx, val_idx, records = _split_indices(cfg, reader)
    n_pos, n_shift = f.positives, f.shifted
    if cfg.data.limit:
        n_pos = n_shift = min(cfg.data.limit, len(train_idx))
        val_idx = val_idx[:cfg.data.limit]
    pos_idx = rng.choice(train_idx, min(n_pos, len(train_idx)), replace=False)
    shift_idx = rng.choice(train_idx, min(n_shift, len(train_idx)), replace=False)
    if cfg.data.limit:
        read = lambda idx: np.stack([reader.read_crop(int(i)) for i in idx])  # noqa: E731
    else:
        crops = cached_crops(reader, Path(cfg.data.cache_dir))
        read = lambda idx: crops[np.sort(idx)]  # noqa: E731
    images = non_face_images()
    train_names, held_out = split_non_faces(images)
    textures = synthetic_textures(rng)
    boxes = f.boxes_per_image if not cfg.data.limit else max(1, cfg.data.limit // len(train_names))
    groups = {
        "faces": [jittered(c, rng, size, f.positive_roll, f.positive_occlusion, [images[n] for n in train_names])
                  for c in read(pos_idx)],
        "shifted": [shifted(c, rng, size) for c in read(shift_idx)],
        "non_face": [c for n in train_names for c in random_crops(images[n], boxes, rng, size)]
        + [c for t in textures.values() for c in random_crops(t, f.boxes_per_texture if not cfg.data.limit else 1, rng, size)],
    }
    animals = None
    if f.animal_dir:
        if detector is None:
            raise Trans3DHeadError("face_score.animal_dir is set: the animal photos need a face detector "
                                   "(fit_face_score(..., detector=...); the CLI stage passes face_score.animal_detectors)")
        animals = _animal_sets(f, detector)
        groups["animal"] = [c for n in animals["fitted"] for c in
                            detection_crops(animals["images"][n], animals["detector"], size, rng, f.animal_jitters)]
    log(f"face score: {len(groups['faces'])} faces, {len(groups['shifted'])} crops off the face, "
        f"{len(groups['non_face'])} non-face crops ({len(train_names)} images, {len(textures)} textures)"
        + (f", {len(groups['animal'])} animal crops ({', '.join(animals['fitted'])})" if animals else ""))
    feats = {k: score_features(predictor, np.stack(v)) for k, v in groups.items() if len(v)}
    negatives = [feats[k] for k in ("shifted", "non_face", "animal") if k in feats]
    x = np.concatenate([feats["faces"], *negatives])
    y = np.r_[np.ones(len(feats["faces"])), np.zeros(sum(len(n) for n in negatives))]
    weight, bias = fit_logistic(x, y, f.weight_decay)
    head = FaceScoreHead(x.shape[1] // 3)
    with torch.no_grad():
        head.linear.weight.copy_(torch.from_numpy(weight).float()[None])
        head.linear.bias.fill_(bias)

    report = face_score_report(predictor, head, read(val_idx), images, held_out, rng, size, animals)
    config = dict(payload["model_config"], face_score=True)
    state = {**state, **{f"model.face_score_head.{k}": t for k, t in head.state_dict().items()}}
    provenance = dict(payload.get("provenance", {}))
    provenance["face_score_fit"] = {
        "config": dataclasses.asdict(f), "code_commit": code_commit(), "faces": len(groups["faces"]),
        "shifted": len(groups["shifted"]), "non_face_crops": len(groups["non_face"]),
        "non_face_images": train_names, "exclusions": records, "report": report,
        "animal_crops": len(groups.get("animal", [])), "animals_fitted": animals["fitted"] if animals else []}
    out = build_payload("trans3dhead", config, state, provenance, payload.get("input"))
    build_network(out)  # loads strictly
    return out, report


def _animal_sets(f, detector) -> dict:
    """The animal photos, their split and the detector that finds their faces (training/animals.py)."""
    from trans3dhead.training.animals import FACE_LIKE_SOURCES, animal_images, split_animals

    images = animal_images(f.animal_dir)
    fitted, held_out = split_animals(images)
    face_like = animal_images(f.animal_dir, sorted(FACE_LIKE_SOURCES))
    return {"images": images, "fitted": fitted, "held_out": held_out, "face_like": face_like, "detector": detector}


def face_score_report(predictor, head: FaceScoreHead, val_crops: np.ndarray, images: dict, held_out: list[str],
                      rng: np.random.Generator, size: int, animals: dict | None = None) -> dict:
    """Scores on data the fit did not see: {group: {"n", "median", "p99", "auc" (validation faces
    against the group), "passed_at_face_p1" (share scoring at least the 1st percentile of the
    validation faces)}} and the validation faces' percentiles."""
    import skimage.data

    def scores(crops):
        if not len(crops):
            return np.zeros(0)
        with torch.no_grad():
            logits = head.linear(torch.from_numpy(score_features(predictor, np.stack(crops))))
        return torch.sigmoid(logits).numpy().ravel()

    lfw = np.load(Path(skimage.data.__file__).parent / "lfw_subset.npy")[100:]  # its non-face half
    cats = [n for n in held_out if n in ANIMAL_IMAGES]
    faces = scores(list(val_crops))
    faces_jittered = scores([jittered(c, rng, size) for c in val_crops])
    groups = {
        "validation faces, jittered": faces_jittered,
        "validation faces shifted half off": scores([shifted(c, rng, size) for c in val_crops]),
        "random crops of held-out non-face images": scores(
            [c for n in held_out if n not in ANIMAL_IMAGES for c in random_crops(images[n], 40, rng, size)]),
        "LFW non-face patches": scores([np.repeat((cv2.resize(p, (size, size)) * 255).astype(np.uint8)[..., None], 3, -1)
                                        for p in lfw]),
        "random crops of the cat": scores([c for n in cats for c in random_crops(images[n], 40, rng, size)]),
    }
    if animals is not None:
        det = animals["detector"]
        groups["detector boxes on the held-out animals (" + ", ".join(animals["held_out"]) + ")"] = scores(
            [c for n in animals["held_out"] for c in detection_crops(animals["images"][n], det, size)])
        for name, img in animals["face_like"].items():
            groups[f"detector boxes on {name} (face-like, not fitted)"] = scores(detection_crops(img, det, size))
    p1 = float(np.percentile(faces, 1)) if len(faces) else float("nan")
    out = {"validation faces": {"n": int(len(faces)), "p1": p1, "median": float(np.median(faces)) if len(faces) else None,
                                "below_0.5": int((faces < 0.5).sum())}}
    for name, s in groups.items():
        if not len(s):
            out[name] = {"n": 0}
            continue
        is_face = name.startswith("validation faces, ")
        out[name] = {"n": int(len(s)), "median": float(np.median(s)), "p99": float(np.percentile(s, 99)),
                     "below_0.5" if is_face else "above_0.5": int(((s < 0.5) if is_face else (s >= 0.5)).sum())}
        if not is_face:
            out[name]["auc"] = roc_auc(np.r_[faces, s], np.r_[np.ones(len(faces)), np.zeros(len(s))])
            out[name]["passed_at_face_p1"] = float((s >= p1).mean())
    return out


def format_face_score_report(report: dict) -> str:
    lines = ["| group | n | median | p99 | AUC vs validation faces | at >= 0.5 |", "|---|---|---|---|---|---|"]
    for name, r in report.items():
        if not r.get("n"):
            lines.append(f"| {name} | 0 | | | | |")
            continue
        count = r.get("below_0.5", r.get("above_0.5"))
        kind = "below" if "below_0.5" in r else "above"
        lines.append(f"| {name} | {r['n']} | {r['median']:.3f} | {r.get('p99', float('nan')):.3f} | "
                     f"{r.get('auc', float('nan')):.4f} | {count} {kind} |")
    return "\n".join(lines)
