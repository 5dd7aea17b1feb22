"""What the shipped pipeline reports on non-face images a user gives (animals, textures): for each
image and each of its detector views (training/face_score.py detector_views: three scales, mirrored,
turned by +-30 deg), every face found at the default detector threshold and at a lowered one, with
its detector score and quality, and how many pass RECOMMENDED_MIN_QUALITY.

    python scripts/measure_non_face.py [--model M] raccoon.png [more images]

(The raccoon of docs/results.md: scipy/misc/face.dat from the scipy 1.11.4 wheel, 768x1024x3
uint8 RGB, bz2-compressed; `--scipy-face-dat PATH` reads it directly.)
"""
from __future__ import annotations

import argparse
import bz2

import numpy as np

from trans3dhead import HeadAligner
from trans3dhead.inference.images import load_image
from trans3dhead.inference.quality import RECOMMENDED_MIN_QUALITY
from trans3dhead.training.face_score import detector_views


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("images", nargs="*")
    parser.add_argument("--scipy-face-dat", help="scipy<1.12's misc/face.dat (a raccoon)")
    parser.add_argument("--low-threshold", type=float, default=0.3)
    parser.add_argument("--model", default="trans3dhead", help="a named model or weights file")
    args = parser.parse_args()
    images = {p: load_image(p)[0] for p in args.images}
    if args.scipy_face_dat:
        rgb = np.frombuffer(bz2.decompress(open(args.scipy_face_dat, "rb").read()), np.uint8).reshape(768, 1024, 3)
        images["scipy face (raccoon)"] = np.ascontiguousarray(rgb[:, :, ::-1])
    for threshold in (None, args.low_threshold):
        aligner = HeadAligner(model=args.model, threads=1, score_threshold=threshold)
        label = "default detector threshold" if threshold is None else f"detector threshold {threshold}"
        for name, img in images.items():
            views = detector_views(img)
            found = [(k, f.score, f.quality) for k, v in enumerate(views) for f in aligner(v)]
            passing = sum(q is not None and q >= RECOMMENDED_MIN_QUALITY for _, _, q in found)
            print(f"{name}, {label}: {len(found)} faces over {len(views)} views, {passing} with quality >= "
                  f"{RECOMMENDED_MIN_QUALITY}: " + ", ".join(f"view {k} score {s:.3f} quality {q:.3f}" for k, s, q in found))


if __name__ == "__main__":
    main()
