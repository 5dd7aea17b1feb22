"""A detector's score threshold and detection side, chosen by a rule on data other than AFLW2000-3D
(docs/results.md, "YuNet"). Rule, written before the first measurement (2026-12-08):

1. Threshold: over scikit-image's non-face data images, the textures made here and the animal
   photos but groot (a film's tree-humanoid; cache/animal_images, `python
   scripts/fetch_animal_images.py`), each in its detector views
   (three scales, mirrored, turned by +-30 deg), count the boxes each detector alone reports. The
   candidate's threshold is the lowest of 0.50, 0.55, ..., 0.95 at which it reports no more of them
   than RetinaFace at its default threshold (0.9).
2. Detection side: the smallest of 640, 800, 960, 1280 at which the candidate, at that threshold,
   finds at least as many faces as RetinaFace at 1280 in 1920x1080 composites of validation-split
   AFLW crops (12 faces a canvas, 10 canvases per face size, faces of 30, 45, 60 and 90 px; a face
   is found when a box holds its centre), summed over the four face sizes.
3. Detection scale (YuNet; rule added 2026-12-08 after items 1-2 were measured, before YuNet at any
   other scale was run on AFLW2000-3D): the image is shrunk by the scale before detection (capped at
   the side of item 2). The smallest of 0.5, 0.75, 1.0 at which (a) in 640x480 composites of
   validation crops (6 faces a canvas, 20 canvases per face size, faces of 24, 32 and 48 px) it finds
   at least as many faces as RetinaFace at full size, summed over the sizes, and (b) on the first 300
   validation canvases of scripts/measure_detector_crops.py, with its RetinaFace fallback, it finds
   as many faces as RetinaFace and changes the landmarks no more (mean) than RetinaFace's crops do.
   (b) is measured by that script; this one prints (a) with --scales.
4. Reported beside, not chosen on: faces found among the validation-split crops (each scaled 2x in a
   canvas with replicated edges, found when a box of the top score holds the canvas centre) and
   among every 10th frame of the shared 4K clip, at the chosen settings.

    python scripts/choose_detector_settings.py [--json out.json]    # the candidate: YuNet (tests/data's copy)
    python scripts/choose_detector_settings.py --scales              # item 3 (a) only
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from trans3dhead.inference.detectors import build_detector, detector_arg

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
YUNET = "yunet:" + str(REPO / "tests" / "data" / "yunet_n_dynamic.onnx")  # the repository's copy
THRESHOLDS = [round(0.5 + 0.05 * k, 2) for k in range(10)]
SIDES = (640, 800, 960, 1280)
FACE_PX = (30, 45, 60, 90)
FLOOR = 0.3


def non_face_images() -> dict[str, np.ndarray]:
    from trans3dhead.training.animals import animal_images
    from trans3dhead.training.face_score import non_face_images as skimage_non_faces, synthetic_textures

    images = dict(skimage_non_faces())
    images.update(synthetic_textures(np.random.default_rng(0)))
    images.update({k: v for k, v in animal_images(REPO / "cache" / "animal_images").items() if k != "groot"})
    return images


def val_crops() -> list[np.ndarray]:
    """The validation split's crops by name, without the near-duplicates of AFLW2000-3D photos."""
    from trans3dhead.data.aflw_crops import read_exclusion_list, read_split

    excluded, _ = read_exclusion_list(DATA / "aflw_crops/excluded_near_duplicates_of_aflw2000_3d.csv")
    names = sorted(read_split(REPO / "configs/splits/aflw_crops_val.txt") - excluded)
    return [cv2.imread(str(DATA / "aflw_crops/images" / f"{n}.jpg")) for n in names]


def scores_on(det, images) -> list[np.ndarray]:
    """Per image, the scores of every box at the floor threshold."""
    return [np.array([d.score for d in det.detect(img)]) for img in images]


def composites(crops: list[np.ndarray], face_px: int, n_canvas: int = 10, per: int = 12, seed: int = 0,
               size: tuple[int, int] = (1920, 1080)):
    """(width, height) canvases of `per` crops each in a 4-column grid (a crop is its face's roi
    box, scaled to face_px, in a tile 1.6 times that with replicated edges) and the face centres."""
    order = np.random.default_rng(seed).permutation(len(crops))
    out = []
    w, h = size
    for k in range(n_canvas):
        canvas, centres = np.full((h, w, 3), 90, np.uint8), []
        for j in range(per):
            crop = crops[order[(k * per + j) % len(crops)]]
            t = int(face_px * 1.6)
            s = face_px / crop.shape[1]
            m = np.array([[s, 0, t / 2 - s * crop.shape[1] / 2], [0, s, t / 2 - s * crop.shape[0] / 2]])
            tile = cv2.warpAffine(crop, m, (t, t), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
            gx, gy = w // 12 + (j % 4) * (w * 11 // 48), h // 9 + (j // 4) * (h * 11 // 36)
            canvas[gy:gy + t, gx:gx + t] = tile
            centres.append((gx + t / 2, gy + t / 2))
        out.append((canvas, centres))
    return out


def found_in(det, side: int, canvases, threshold: float) -> int:
    n = 0
    for canvas, centres in canvases:
        boxes = [d.box for d in det._detect_at(canvas, side) if d.score >= threshold]
        n += sum(any(b[0] < cx < b[2] and b[1] < cy < b[3] for b in boxes) for cx, cy in centres)
    return n


def main() -> None:
    from trans3dhead.training.face_score import detector_views

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candidate", default=YUNET, type=detector_arg)
    ap.add_argument("--reference", default="retinaface", type=detector_arg)
    ap.add_argument("--json")
    ap.add_argument("--scales", action="store_true", help="item 3 (a) only")
    args = ap.parse_args()
    ref = build_detector(args.reference, 1, FLOOR, fallback=False)
    cand = build_detector(args.candidate, 1, FLOOR, fallback=False)
    ref_t, cand_t = type(ref).score_threshold_default, type(cand).score_threshold_default
    report: dict = {"reference": args.reference, "candidate": args.candidate}
    if args.scales:
        crops = val_crops()
        sets = {px: composites(crops, px, n_canvas=20, per=6, size=(640, 480)) for px in (24, 32, 48)}
        ref_found = {px: found_in(ref, 640, cs, ref_t) for px, cs in sets.items()}
        print(f"640x480 composites, {6 * 20} faces per size: {args.reference} at full size: {ref_found} "
              f"({sum(ref_found.values())})", flush=True)
        t = cand_t
        for scale in (0.5, 0.75, 1.0):
            got = {px: found_in(cand, round(640 * scale), cs, t) for px, cs in sets.items()}
            print(f"  {args.candidate} at scale {scale} (threshold {t}): {got} ({sum(got.values())})", flush=True)
        return

    views = [v for img in non_face_images().values() for v in detector_views(img)]
    ref_neg = int(sum((s >= ref_t).sum() for s in scores_on(ref, views)))
    cand_scores = np.concatenate(scores_on(cand, views) + [np.zeros(0)])
    per_t = {t: int((cand_scores >= t).sum()) for t in THRESHOLDS}
    threshold = next((t for t in THRESHOLDS if per_t[t] <= ref_neg), THRESHOLDS[-1])
    print(f"non-face views: {len(views)}; {args.reference} at {ref_t}: {ref_neg} boxes; {args.candidate}: "
          + ", ".join(f"{t}: {n}" for t, n in per_t.items()) + f" -> threshold {threshold}", flush=True)
    report.update(non_face_views=len(views), reference_non_face_boxes=ref_neg, candidate_non_face_boxes=per_t,
                  threshold=threshold)

    crops = val_crops()
    sets = {px: composites(crops, px) for px in FACE_PX}
    total = sum(len(c) for cs in sets.values() for _, c in cs)
    ref_found = {px: found_in(ref, 1280, cs, ref_t) for px, cs in sets.items()}
    print(f"composites: {args.reference} at 1280: {ref_found} ({sum(ref_found.values())} of {total})", flush=True)
    cand_found = {}
    for side in SIDES:
        cand_found[side] = {px: found_in(cand, side, cs, threshold) for px, cs in sets.items()}
        print(f"  {args.candidate} at {side}: {cand_found[side]} ({sum(cand_found[side].values())})", flush=True)
    side = next((s for s in SIDES if sum(cand_found[s].values()) >= sum(ref_found.values())), SIDES[-1])
    print(f"-> detection side {side}", flush=True)
    report.update(composite_faces=total, reference_found=ref_found, candidate_found=cand_found, side=side)

    # reported beside: validation crops in a canvas, clip frames
    from trans3dhead.training.face_score import in_canvas

    def centre_hit(det, img, t, s):
        dets = [d for d in det._detect_at(img, s) if d.score >= t]
        h, w = img.shape[:2]
        return bool(dets) and dets[0].box[0] < w / 2 < dets[0].box[2] and dets[0].box[1] < h / 2 < dets[0].box[3]

    canv = [in_canvas(c) for c in crops]
    cap, frames, i = cv2.VideoCapture(str(DATA / "video" / "side_profile.mp4")), [], 0
    while True:
        ok, f = cap.read()
        if not ok:
            break
        if i % 10 == 0:
            frames.append(f)
        i += 1
    for name, det, t, s in ((args.reference, ref, ref_t, type(ref).detect_size_default),
                            (args.candidate, cand, threshold, side)):
        v = sum(centre_hit(det, c, t, s) for c in canv)
        k = sum(any(d.score >= t for d in det._detect_at(f, s)) for f in frames)
        print(f"{name} at {t}, side {s}: validation faces {v} of {len(canv)}; clip frames with a face {k} of {len(frames)}"
              " (no retry)", flush=True)
        report[f"{name}_validation_found"], report[f"{name}_clip_found"] = int(v), int(k)
    report.update(validation_faces=len(canv), clip_frames=len(frames))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
