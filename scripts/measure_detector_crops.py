"""How much a detector's crops change the landmarks, on the validation split (never AFLW2000-3D):
the named detector with its fallback (build_detector). Each validation crop (120 px, its face's roi box) is scaled 2x into a 400-px canvas with replicated
edges (training/face_score.py in_canvas), so the face's roi box is known exactly there; the default
model's landmarks from the detected face's crop (the detection nearest the canvas centre, with the
detector's crop policy) are compared with its landmarks from the roi-box crop it was trained on.
Reported: faces found, and the mean 2D landmark distance over the 68 points in % of the roi side
(mean and median over found faces). Detector time is the CPU time in detect (one thread).

    python scripts/measure_detector_crops.py retinaface yunet yunet@0.5 yunet_s@0.5 [--limit N]

A spec is NAME[@SCALE] (the scale: YuNet's detect_scale); yunet is the repository's copy of its
weights (tests/data), yunet_s its smaller model (onnx/yunet_s_dynamic.onnx of libfacedetection.train,
given by --yunet-s-file).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from trans3dhead.inference.detectors import Detection, FaceDetector, build_detector
from trans3dhead.inference.tracking import _iou  # the IoU of two (x0, y0, x1, y1) boxes


class LocalRefine(FaceDetector):
    """A probe (2026-12-08), not a product detector: YuNet (with its fallback) proposes the faces;
    RetinaFace then boxes each again on the region around it (twice the box's side, shrunk so the face
    is about face_px px), and its box, with its crop policy, replaces YuNet's where it overlaps it
    (IoU >= 0.3); elsewhere YuNet's box stays."""

    name = "yunet+retinaface"

    def __init__(self, proposer, face_px: int = 96):
        from trans3dhead.inference.detectors import RetinaFaceDetector

        self.proposer, self.face_px = proposer, face_px
        self.refiner = RetinaFaceDetector(threads=1, score_threshold=0.5, max_side=4096)
        self.crop_policy = proposer.crop_policy

    def detect(self, image):
        import cv2

        out = []
        for d in self.proposer.detect(image):
            if d.source:  # found by the fallback: already RetinaFace's
                out.append(d)
                continue
            side = (d.box[2] - d.box[0] + d.box[3] - d.box[1]) / 2
            c = (d.box[:2] + d.box[2:]) / 2
            x0, y0 = np.maximum(np.floor(c - side), 0).astype(int)
            x1, y1 = np.minimum(np.ceil(c + side), image.shape[1::-1]).astype(int)
            s = min(1.0, self.face_px / side)
            w, h = max(1, round((x1 - x0) * s)), max(1, round((y1 - y0) * s))
            region = cv2.resize(image[y0:y1, x0:x1], (w, h), interpolation=cv2.INTER_AREA)
            scale = np.array([(x1 - x0) / w, (y1 - y0) / h] * 2)
            boxes = [r.box * scale + [x0, y0, x0, y0] for r in self.refiner.detect(region)]
            best = max(boxes, key=lambda b: _iou(b, d.box), default=None)
            if best is not None and _iou(best, d.box) >= 0.3:
                out.append(Detection(best, d.score, None, "retinaface"))
            else:
                out.append(d)
        return out

    def crop_box(self, detection):
        if detection.source == "retinaface":
            return self.refiner.crop_box(detection)
        return self.proposer.crop_box(detection)


def build(spec: str, yunet_s_file: str | None):
    """The named detector with its fallback (build_detector), YuNet's scale or model file changed;
    "yunet+rf[:FACE_PX]": the LocalRefine probe."""
    from choose_detector_settings import YUNET

    if spec.startswith("yunet+rf"):
        px = spec.partition(":")[2]
        return LocalRefine(build_detector(YUNET, threads=1), int(px) if px else 96)
    name, _, scale = spec.partition("@")
    det = build_detector(YUNET if name in ("yunet", "yunet_s") else name, threads=1)
    if name == "yunet_s":  # a probe of the smaller model: the sha256 check bypassed
        det.primary._model = lambda: yunet_s_file
    if scale:
        det.primary.detect_scale = float(scale)
    return det


def main() -> None:
    from choose_detector_settings import val_crops
    from trans3dhead.inference import HeadAligner
    from trans3dhead.training.face_score import CANVAS_PAD, CANVAS_SCALE, in_canvas

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("specs", nargs="+")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--photos", help="also: each spec's detect CPU ms a photo over this folder's images")
    ap.add_argument("--yunet-s-file")
    args = ap.parse_args()
    canvases = [in_canvas(c) for c in val_crops()[:args.limit]]
    side = 120 * CANVAS_SCALE
    roi = np.array([[CANVAS_PAD, CANVAS_PAD, CANVAS_PAD + side, CANVAS_PAD + side]], np.float64)
    ref_aligner = HeadAligner(threads=1, backend="onnx", min_quality=None)
    ref = [ref_aligner.align_crops(c, roi, [Detection(box=roi[0], score=1.0)])[0].landmarks_3d[:, :2] for c in canvases]
    for spec in args.specs:
        det = build(spec, args.yunet_s_file)
        aligner = HeadAligner(threads=1, backend="onnx", min_quality=None, detector=det)
        errs, cpu, fell_back = [], 0.0, 0
        for c, r in zip(canvases, ref):
            t0 = time.process_time()
            dets = det.detect(c)
            cpu += time.process_time() - t0
            if not dets:
                continue
            centre = np.array(c.shape[1::-1]) / 2
            d = min(dets, key=lambda d: np.linalg.norm((d.box[:2] + d.box[2:]) / 2 - centre))
            fell_back += bool(d.source)
            lm = aligner.align_crops(c, det.crop_box(d)[None], [d])[0].landmarks_3d[:, :2]
            errs.append(100 * np.linalg.norm(lm - r, axis=1).mean() / side)
        e = np.array(errs)
        print(f"{spec}: found {len(e)} of {len(canvases)} ({fell_back} boxed by another detector); landmark change mean {e.mean():.3f} %, median "
              f"{np.median(e):.3f} %, 90th pct {np.percentile(e, 90):.3f} %; detect {1000 * cpu / len(canvases):.2f} CPU ms a canvas",
              flush=True)
        if args.photos:
            import cv2

            from trans3dhead.inference.images import IMAGE_SUFFIXES

            photos = [cv2.imread(str(p)) for p in sorted(Path(args.photos).iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
            det.detect(photos[0])
            t0 = time.process_time()
            n = sum(len(det.detect(p)) for p in photos)
            print(f"  {args.photos}: {1000 * (time.process_time() - t0) / len(photos):.2f} CPU ms a photo, {n} faces "
                  f"in {len(photos)} photos", flush=True)


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
