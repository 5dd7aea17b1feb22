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

import numpy as np

from trans3dhead.inference.detectors import Detection, build_detector


def build(spec: str, yunet_s_file: str | None):
    """The named detector with its fallback (build_detector), YuNet's scale or model file changed."""
    from choose_detector_settings import YUNET

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
        print(f"{spec}: found {len(e)} of {len(canvases)} ({fell_back} by the fallback); landmark change mean {e.mean():.3f} %, median "
              f"{np.median(e):.3f} %, 90th pct {np.percentile(e, 90):.3f} %; detect {1000 * cpu / len(canvases):.2f} CPU ms a canvas",
              flush=True)


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
