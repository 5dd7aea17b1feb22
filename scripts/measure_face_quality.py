"""Measure cues that separate real faces from non-faces, for the face-quality score (issue 13 item 5).

Positives: the validation split of the AFLW crops (minus the near-duplicates of AFLW2000-3D),
each scaled 2x and placed in a larger canvas (edge pixels replicated) so the detector sees a
face in context; the bundled astronaut photo; frames of the shared side-profile clip.
Negatives: scikit-image's non-face data images (the cat `chelsea`, coffee, rocket, bricks, ...)
and the non-face half of its LFW subset; blank, noise and texture images made here; crops of the
validation faces shifted by half their side; the validation faces blurred heavily.

For every negative image the detector runs with a low threshold (0.3) on the image and on scaled,
flipped and rotated copies, so the negatives are the face-like boxes a detector does report; random
given boxes (network only) add the crops a tracker could slide onto. Each row: group, label,
detector score, branch disagreement (% of the crop side), crop sharpness (Laplacian variance of
the crop centre) and the quality (inference/quality.py).
AFLW2000-3D is never read here.

    python scripts/measure_face_quality.py --out /tmp/face_quality.npz

With --report-aflw2000-3d it instead REPORTS (after the threshold was fixed, never to choose it)
how many AFLW2000-3D faces the detector finds on the full 450x450 images with and without the
default quality threshold: a face counts as found when a detection's box holds the centre of its
ground-truth landmarks.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import cv2
import numpy as np

from trans3dhead.fileio import to_bgr_uint8
from trans3dhead.training.face_score import detector_views, in_canvas

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
# scikit-image data images that show a person (left out of the negatives)
FACE_IMAGES = {"astronaut.png", "camera.png"}


def skimage_images() -> dict[str, np.ndarray]:
    from trans3dhead.training.face_score import non_face_images

    return non_face_images()  # scikit-image's data images without a person (the cat included)


def synthetic_images(rng) -> dict[str, np.ndarray]:
    from trans3dhead.training.face_score import synthetic_textures

    return synthetic_textures(rng)


def val_names() -> list[str]:
    import csv

    names = [ln.strip() for ln in open(REPO / "configs/splits/aflw_crops_val.txt") if ln.strip() and not ln.startswith("#")]
    with open(DATA / "aflw_crops/excluded_near_duplicates_of_aflw2000_3d.csv") as f:
        excluded = {row["crop_name"] for row in csv.DictReader(f)}
    return [n for n in names if n not in excluded]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--limit", type=int, default=None, help="validation faces to use (default all)")
    ap.add_argument("--video-every", type=int, default=25, help="take every Nth frame of the clip")
    ap.add_argument("--threshold", type=float, default=None,
                    help="quality threshold of the summary (default: quality.RECOMMENDED_MIN_QUALITY)")
    ap.add_argument("--summarize", action="store_true", help="only print the summary of a saved --out file")
    ap.add_argument("--model", default=None, help="named model or weights file (default: the package's default)")
    ap.add_argument("--report-aflw2000-3d", action="store_true", help="report on the benchmark only (see above)")
    ap.add_argument("--held-out-from", type=int, default=None, metavar="K",
                    help="only the validation faces from the K-th name on (and the negatives made from them): "
                         "a check on faces the threshold was not chosen on")
    args = ap.parse_args()
    if args.threshold is None:
        from trans3dhead.inference.quality import RECOMMENDED_MIN_QUALITY

        args.threshold = RECOMMENDED_MIN_QUALITY
    if args.summarize:
        summarize(args.out, args.threshold)
        return
    if args.report_aflw2000_3d:
        report_aflw2000_3d(args.out, args.threshold, args.model)
        return

    import torch

    from trans3dhead.inference import HeadAligner
    from trans3dhead.inference.detectors import Detection, RetinaFaceDetector
    from trans3dhead.inference.crops import extract_crop
    from trans3dhead.inference.quality import branch_disagreement, crop_sharpness

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    aligner = HeadAligner(model=args.model, detector=RetinaFaceDetector(score_threshold=0.3, threads=1), threads=1,
                          min_quality=None)
    factor = aligner.disagreement_factor
    rows: list[tuple] = []

    def add(group, label, image, faces, name=""):
        for f in faces:
            crop = extract_crop(image, f.crop_box, 120)
            rows.append((group, label, float(f.score), branch_disagreement(f, factor), crop_sharpness(crop),
                         f.quality, name))

    def detect(group, label, image, name):
        add(group, label, image, aligner(image), name)

    def given(image, boxes):
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        return aligner.align_crops(image, boxes, [Detection(box=b, score=1.0) for b in boxes])

    held_out = args.held_out_from is not None
    # Negatives: detector hits and random given boxes on non-face images
    for name, img in ({} if held_out else {**skimage_images(), **synthetic_images(rng)}).items():
        for v in detector_views(img):
            detect("neg_detected", 0, v, name)
        h, w = img.shape[:2]
        for _ in range(12):
            side = rng.uniform(0.15, 0.6) * min(h, w)
            x0, y0 = rng.uniform(0, w - side), rng.uniform(0, h - side)
            add("neg_random_box", 0, img, given(img, [x0, y0, x0 + side, y0 + side]), name)
    import skimage.data

    lfw = np.load(Path(skimage.data.__file__).parent / "lfw_subset.npy")  # 100 faces, then 100 non-faces
    for k, patch in enumerate([] if held_out else lfw[100:]):
        img = np.repeat((cv2.resize(patch, (120, 120)) * 255).astype(np.uint8)[..., None], 3, -1)
        add("neg_lfw_nonface", 0, img, given(img, [0, 0, 120, 120]), f"lfw{k}")

    # Positives (and negatives made from them): the validation faces
    names = val_names()[args.held_out_from:] if held_out else val_names()[: args.limit]
    root = DATA / "aflw_crops/images"
    for n in names:
        crop = cv2.imread(str(root / f"{n}.jpg"))
        canvas = in_canvas(crop)
        detect("pos_val_detected", 1, canvas, n)
        # the crop itself as given box (the crop box of the training data)
        add("pos_val_given", 1, canvas, given(canvas, [80, 80, 320, 320]), n)
        dx, dy = rng.choice([-1, 1], 2) * 120  # half the 240 px side
        add("neg_shifted", 0, canvas, given(canvas, [80 + dx, 80 + dy, 320 + dx, 320 + dy]), n)
        for sigma in (6, 12):  # on the 240 px face: ~ 3 and 6 px of a 120 crop
            blurred = cv2.GaussianBlur(canvas, (0, 0), sigma)
            add(f"blur{sigma}_given", 0, blurred, given(blurred, [80, 80, 320, 320]), n)
            detect(f"blur{sigma}_detected", 0, blurred, n)
    photo = cv2.imread(str(REPO / "trans3dhead/assets/example_astronaut.jpg"))
    if not held_out:
        detect("pos_photo", 1, photo, "astronaut")
    cap = cv2.VideoCapture(str(DATA / "video/side_profile.mp4"))
    i = 0
    while not held_out:
        ok, frame = cap.read()
        if not ok:
            break
        if i % args.video_every == 0:
            detect("pos_video", 1, frame, f"frame{i}")
        i += 1
    cap.release()

    group, label, score, gap, sharp, quality, name = (np.array(c) for c in zip(*rows))
    np.savez(args.out, group=group, label=label.astype(int), score=score.astype(float), gap=gap.astype(float),
             sharpness=sharp.astype(float), quality=quality.astype(float), name=name)
    summarize(args.out, args.threshold)


def _auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(a positive scores above a negative), ties half."""
    return float((pos[:, None] > neg[None]).mean() + 0.5 * (pos[:, None] == neg[None]).mean())


def summarize(path: str, t: float) -> None:
    """The tables of docs/results.md ("Face-quality score") from a saved measurement, at quality
    threshold t. Non-face images the face-score head was fitted on (training/face_score.py
    split_non_faces, and the textures made here) are reported apart from the held-out ones
    (neg_detected / neg_random_box: "seen" and "held out")."""
    from trans3dhead.training.face_score import non_face_images, split_non_faces

    d = np.load(path)
    g, s, gap, sharp, q = d["group"].astype(object), d["score"], d["gap"], d["sharpness"], d["quality"]
    _, held_out = split_non_faces(non_face_images())
    for base in ("neg_detected", "neg_random_box"):
        m = g == base
        g[m] = np.where(np.isin(d["name"][m], held_out), base + "_held_out", base + "_seen")
    pos = np.isin(g, ["pos_val_detected", "pos_video", "pos_photo"]) & (s >= 0.9)  # as the default detector
    print(f"positives (detector >= 0.9), kept at quality {t}:")
    for name in ("pos_val_detected", "pos_video", "pos_photo"):
        m = (g == name) & (s >= 0.9)
        if not m.any():
            continue
        print(f"  {name:18s} n={m.sum():4d} lowest {q[m].min():.3f} median {np.median(q[m]):.3f} "
              f"kept {np.sum(q[m] >= t)} ({np.mean(q[m] >= t):.1%})")
    print("negatives: passed at the threshold, AUC of quality / agreement alone / sharpness alone:")
    for name, min_score in (("neg_detected_seen", 0.0), ("neg_detected_held_out", 0.0), ("neg_detected_seen", 0.9),
                            ("neg_detected_held_out", 0.9), ("neg_random_box_seen", None), ("neg_random_box_held_out", None),
                            ("neg_lfw_nonface", None), ("neg_shifted", None), ("blur12_given", None),
                            ("blur12_detected", 0.9), ("blur6_given", None), ("blur6_detected", 0.9)):
        m = (g == name) & (s >= (min_score or 0.0))
        if not m.any():
            continue
        print(f"  {name:16s} score>={min_score} n={m.sum():4d} median {np.median(q[m]):.3f} p99 "
              f"{np.percentile(q[m], 99):.3f} passed {np.sum(q[m] >= t)} ({np.mean(q[m] >= t):.1%}) AUC "
              f"{_auc(q[pos], q[m]):.3f} / {_auc(-gap[pos], -gap[m]):.3f} / {_auc(sharp[pos], sharp[m]):.3f}"
              + (f" detector {_auc(s[pos], s[m]):.3f}" if min_score else ""))


def report_aflw2000_3d(out: str, threshold: float, model: str | None) -> None:
    import torch

    from trans3dhead.inference import HeadAligner

    DEFAULT_MIN_QUALITY = threshold  # noqa: N806  (the threshold reported on)
    torch.set_num_threads(1)
    aligner = HeadAligner(model=model, threads=1, min_quality=None)
    meta = np.load(DATA / "aflw2000_3d/aflw2000_3d_meta.npz")
    best, n_faces, n_kept, yaws = [], 0, 0, np.abs(meta["yaw_bin_deg"])
    for name, pts in zip(meta["names"], meta["pts68"]):
        image = cv2.imread(str(DATA / "aflw2000_3d/images" / f"{name}.jpg"))
        cx, cy = pts[0].mean(), pts[1].mean()
        faces = aligner(image)
        n_faces += len(faces)
        n_kept += sum(f.quality >= DEFAULT_MIN_QUALITY for f in faces)
        hits = [f.quality for f in faces if f.box[0] <= cx <= f.box[2] and f.box[1] <= cy <= f.box[3]]
        best.append(max(hits) if hits else np.nan)
    best = np.array(best)
    np.savez(out, names=meta["names"], quality=best, yaw=yaws)
    found = ~np.isnan(best)
    kept = found & (np.nan_to_num(best, nan=-1) >= DEFAULT_MIN_QUALITY)
    print(f"AFLW2000-3D, {len(best)} images: ground-truth face found {found.sum()} without the quality "
          f"threshold, {kept.sum()} with min_quality={DEFAULT_MIN_QUALITY}; detections {n_faces} -> {n_kept}")
    for lo, hi in ((0, 30), (30, 60), (60, 1e9)):
        m = (yaws > lo) & (yaws <= hi) if lo else yaws <= hi
        print(f"  |yaw| {lo}-{hi:g}: {m.sum()} images, found {(found & m).sum()}, kept {(kept & m).sum()}, "
              f"quality p1/p50 of found {np.nanpercentile(best[m], 1):.3f}/{np.nanmedian(best[m]):.3f}")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
