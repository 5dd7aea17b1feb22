"""Fit a detector's box -> crop constants (CropPolicy) on AFLW2000-3D and report what they cost.

Protocol (docs/detector_calibration.md): detect every image with the detector alone (RetinaFace,
or FaceBoxes: --detector faceboxes); a face is found when
a detection scoring at least --score-threshold overlaps the ground-truth landmarks' bounding box
with IoU >= 0.3 (the best such one is used). On the even-numbered half (index 0, 2, 4, ... of the
meta names) the policy is first fitted geometrically (medians of the scale and centre shift that
map the detector box onto 3DDFA's roi_box), then refined by a small grid search on NME with the
model. The odd half reports the NME (mean of the three yaw bins, package frame) of detector crops
against roi_box crops with the same model and the same crop code, with and without the second pass.
A face the detector misses is scored with the fallback crop of the whole image (the square box
over the image; once more with the second pass from it), and the figures on detected faces only
are given beside.

    python scripts/calibrate_detector.py --data-root ../shared/data/aflw2000_3d --json cache/calibration.json
    python scripts/calibrate_detector.py --detector faceboxes --score-threshold 0.5 --json cache/calibration_faceboxes.json
    python scripts/calibrate_detector.py --detector faceboxes --score-threshold 0.5 --other-boxes   # boxes not the labelled face
    python scripts/calibrate_detector.py --detector yunet:tests/data/yunet_n_dynamic.onnx --score-threshold 0.7 --json cache/calibration_yunet.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from trans3dhead.data.aflw2000_3d import AFLW2000_3D
from trans3dhead.evaluation.metrics import score_alignment
from trans3dhead.face_model.frames import crop_to_image
from trans3dhead.fileio import atomic_path, atomic_write_text
from trans3dhead.inference.backends import build_backend
from trans3dhead.inference.crops import CROP_SIZE, crop_box_from_landmarks, extract_crop
from trans3dhead.inference.detectors import CropPolicy, build_detector, detector_arg
from trans3dhead.fileio import read_image_file

MIN_IOU = 0.3
CACHE_SCORE_FLOOR = 0.3  # detections are cached down to this score so thresholds can be compared


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lo, hi = np.maximum(a[..., :2], b[..., :2]), np.minimum(a[..., 2:], b[..., 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), -1)
    area = lambda z: np.prod(z[..., 2:] - z[..., :2], -1)  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def make_detector(name: str, score_threshold: float):
    """The detector alone (without its fallback: its own boxes are being fitted)."""
    return build_detector(name, torch.get_num_threads(), score_threshold, fallback=False)


def detect_all(ds: AFLW2000_3D, cache: Path | None, detector: str = "retinaface") -> np.ndarray:
    """(M, 6) rows: image index, x0, y0, x1, y1, score, for every detection scoring >= the floor."""
    if cache and cache.is_file():
        with np.load(cache) as z:
            if list(z["names"]) == ds.names:
                return z["detections"]
    det = make_detector(detector, CACHE_SCORE_FLOOR)
    rows = []
    t0 = time.perf_counter()
    for i in range(len(ds)):
        rows += [[i, *d.box, d.score] for d in det.detect(read_image_file(ds.image_path(i)))]
    print(f"detected {len(ds)} images in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    out = np.array(rows, np.float64).reshape(-1, 6)
    if cache:
        with atomic_path(cache, suffix=".npz") as tmp, open(tmp, "wb") as f:
            np.savez(f, names=np.array(ds.names), detections=out)
    return out


def match(ds: AFLW2000_3D, dets: np.ndarray, score_threshold: float) -> np.ndarray:
    """(N, 4) the matched detector box per image, NaN where the face was missed."""
    lm = ds.landmarks[..., :2]
    gt_box = np.concatenate([lm.min(1), lm.max(1)], 1)
    boxes, best = np.full((len(ds), 4), np.nan), np.zeros(len(ds))
    for row in dets[dets[:, 5] >= score_threshold]:
        i = int(row[0])
        v = iou(row[1:5], gt_box[i])
        if v >= MIN_IOU and v > best[i]:
            boxes[i], best[i] = row[1:5], v
    return boxes


def other_boxes(ds: AFLW2000_3D, dets: np.ndarray, score_threshold: float) -> tuple[int, int]:
    """Detections scoring >= the threshold that are not the labelled face (IoU < MIN_IOU with its
    landmarks' box), and the photos holding them."""
    lm = ds.landmarks[..., :2]
    gt_box = np.concatenate([lm.min(1), lm.max(1)], 1)
    rows = dets[dets[:, 5] >= score_threshold]
    other = [int(r[0]) for r in rows if iou(r[1:5], gt_box[int(r[0])]) < MIN_IOU]
    return len(other), len(set(other))


def fit_geometric(boxes: np.ndarray, roi: np.ndarray) -> CropPolicy:
    """Medians of side ratio and centre shift (in units of the box size (w + h) / 2) onto roi_box."""
    size = ((boxes[:, 2] - boxes[:, 0]) + (boxes[:, 3] - boxes[:, 1])) / 2
    centre, roi_centre = (boxes[:, :2] + boxes[:, 2:]) / 2, (roi[:, :2] + roi[:, 2:]) / 2
    shift = (roi_centre - centre) / size[:, None]
    return CropPolicy(scale=float(np.median((roi[:, 2] - roi[:, 0]) / size)), shift_x=float(np.median(shift[:, 0])),
                      shift_y=float(np.median(shift[:, 1])))


class Evaluator:
    """Runs the model on crops of AFLW2000-3D images and scores NME in the package frame."""

    def __init__(self, ds: AFLW2000_3D, model: str, batch_size: int):
        self.ds, self.batch_size = ds, batch_size
        self.net = build_backend(model, "torch", threads=torch.get_num_threads())
        self._images: dict[int, np.ndarray] = {}
        self.gt = ds.landmarks[..., :2]

    def image(self, i: int) -> np.ndarray:
        if i not in self._images:
            self._images[i] = read_image_file(self.ds.image_path(i))
        return self._images[i]

    def predict_passes(self, idx: np.ndarray, crop_boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, 68, 2) landmarks in image pixels after the first and after the second pass."""
        out = []
        for _ in range(2):
            if len(idx) == 0:
                return np.zeros((0, 68, 2)), np.zeros((0, 68, 2))
            crops = np.stack([extract_crop(self.image(i), b) for i, b in zip(idx, crop_boxes)])
            lm_crop = self.net(crops, self.batch_size)[0]
            out.append(crop_to_image(lm_crop[..., :2], crop_boxes, CROP_SIZE))
            crop_boxes = np.stack([crop_box_from_landmarks(p) for p in out[-1]])
        return out[0], out[1]

    def predict(self, idx: np.ndarray, crop_boxes: np.ndarray) -> np.ndarray:
        """(n, 68, 2) landmarks in image pixels, one pass."""
        crops = np.stack([extract_crop(self.image(i), b) for i, b in zip(idx, crop_boxes)])
        lm_crop = self.net(crops, self.batch_size)[0]
        return crop_to_image(lm_crop[..., :2], crop_boxes, CROP_SIZE)

    def score(self, idx: np.ndarray, pred: np.ndarray):
        return score_alignment(pred, self.gt[idx], self.ds.yaw_bin_deg[idx])


def whole_image_box(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    side = max(h, w)
    return np.array([(w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared/data/aflw2000_3d"))
    ap.add_argument("--model", default="3ddfa-mb05")
    ap.add_argument("--detector", type=detector_arg, default="retinaface")
    ap.add_argument("--score-threshold", type=float, default=0.9)
    ap.add_argument("--cache", help="detections cache ('' for none; default cache/DETECTOR_aflw2000_3d.npz)")
    ap.add_argument("--json", help="write every figure to this JSON file")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--no-search", action="store_true", help="keep the geometric fit (no NME grid search)")
    ap.add_argument("--other-boxes", action="store_true",
                    help="only count the detections that are not the labelled face, at --score-threshold, and stop")
    ap.add_argument("--policy", type=float, nargs=3, metavar=("SCALE", "SHIFT_X", "SHIFT_Y"),
                    help="evaluate this policy instead of fitting one")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    ds = AFLW2000_3D(args.data_root)
    short = args.detector.split(":")[0]  # "yunet:PATH" -> yunet
    cache = f"cache/{short}_aflw2000_3d.npz" if args.cache is None else args.cache
    dets = detect_all(ds, Path(cache) if cache else None, args.detector)
    if args.other_boxes:
        n, photos = other_boxes(ds, dets, args.score_threshold)
        empty = len(ds) - len(set(dets[dets[:, 5] >= args.score_threshold, 0].astype(int)))
        print(f"{args.detector} at {args.score_threshold}: {n} detections that are not the labelled face, in {photos} photos; "
              f"{empty} photos without any detection")
        return 0
    boxes = match(ds, dets, args.score_threshold)
    found = ~np.isnan(boxes[:, 0])
    even, odd = np.arange(0, len(ds), 2), np.arange(1, len(ds), 2)
    fit_idx = even[found[even]]
    ev = Evaluator(ds, args.model, args.batch_size)

    geometric = fit_geometric(boxes[fit_idx], ds.roi_box[fit_idx])
    policy, fit_nme, grid = geometric, None, []
    if args.policy:
        policy = CropPolicy(*args.policy)
    elif not args.no_search:
        for ds_ in (-0.075, -0.05, -0.025, 0.0, 0.025):
            for f in (0.95, 1.0, 1.05):
                cand = CropPolicy(scale=round(geometric.scale * f, 3), shift_x=round(geometric.shift_x, 3),
                                  shift_y=round(geometric.shift_y + ds_, 3))
                nme = ev.score(fit_idx, ev.predict(fit_idx, cand.crop_box(boxes[fit_idx]))).nme_mean_of_bins
                grid.append({"policy": vars(cand), "nme_even": nme})
                if fit_nme is None or nme < fit_nme:
                    policy, fit_nme = cand, nme
    print(f"geometric fit: {geometric}\nchosen: {policy} (even-half NME {fit_nme})", file=sys.stderr)

    # report on the odd half: every prediction is made once and indexed into the rows
    hit, miss = odd[found[odd]], odd[~found[odd]]
    fallback = np.stack([whole_image_box(ev.image(i)) for i in miss]).reshape(-1, 4)
    roi = ev.predict_passes(odd, ds.roi_box[odd])
    det = ev.predict_passes(hit, policy.crop_box(boxes[hit]))
    whole = ev.predict_passes(miss, fallback)
    pos = {i: k for k, i in enumerate(odd)}
    hit_rows = [pos[i] for i in hit]
    rows = {}
    for sp, tag in ((0, ""), (1, " + second pass")):
        rows[f"roi_box crops{tag}, all odd faces"] = ev.score(odd, roi[sp])
        for miss_sp, miss_tag in ((0, "whole-image crop"), (1, "whole-image crop + second pass")):
            pred = np.empty((len(ds), 68, 2))
            pred[hit], pred[miss] = det[sp], whole[miss_sp]
            rows[f"detector crops{tag}, all odd faces, misses: {miss_tag}"] = ev.score(odd, pred[odd])
        rows[f"roi_box crops{tag}, detected faces only"] = ev.score(hit, roi[sp][hit_rows])
        rows[f"detector crops{tag}, detected faces only"] = ev.score(hit, det[sp])
    shipped = make_detector(args.detector, args.score_threshold).crop_policy
    if shipped != policy:
        rows["detector crops with the SHIPPED policy, detected faces only"] = ev.score(
            hit, ev.predict(hit, shipped.crop_box(boxes[hit])))

    lines = [f"model {args.model}, {args.detector} score >= {args.score_threshold}; odd half: {len(odd)} faces, "
             f"{len(miss)} missed (even half: {int((~found[even]).sum())} missed)",
             "", "| crops | NME [0,30) | NME [30,60) | NME [60,90] | NME mean of bins | NME all |",
             "|---|---|---|---|---|---|"]
    for label, s in rows.items():
        lines.append(f"| {label} | " + " | ".join(f"{b:.3f}" for b in s.nme_bins)
                     + f" | **{s.nme_mean_of_bins:.3f}** | {s.nme_all:.3f} |")
    print("\n".join(lines))
    print(f"\n{short.upper()}_CROP_POLICY = CropPolicy(scale={policy.scale}, shift_x={policy.shift_x}, "
          f"shift_y={policy.shift_y})")
    if args.json:
        atomic_write_text(args.json, json.dumps({
            "model": args.model, "detector": args.detector, "score_threshold": args.score_threshold, "min_iou": MIN_IOU,
            "geometric_fit": vars(geometric), "policy": vars(policy), "fit_nme_even": fit_nme, "grid": grid,
            "missed_odd": [ds.names[i] for i in miss], "missed_even": [ds.names[i] for i in even[~found[even]]],
            "results_odd": {k: v.to_dict() for k, v in rows.items()}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
