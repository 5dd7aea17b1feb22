"""What the shipped pipeline reports on non-face images a user gives (animals, textures): for each
image and each of its detector views (training/face_score.py detector_views: three scales, mirrored,
turned by +-30 deg), every face found at the default detector threshold and at a lowered one, with
its detector score and quality, and how many pass RECOMMENDED_MIN_QUALITY.

    python scripts/measure_non_face.py [--model M] raccoon.png [more images]

The animal photos come from `python scripts/fetch_animal_images.py` (cache/animal_images: the
raccoon is scipy 1.11.4's misc/face.dat, decoded there). `--detector retinaface` measures the other
detector (its own default threshold; the lowered one is --low-threshold for either).
"""
from __future__ import annotations

import argparse

from trans3dhead import HeadAligner
from trans3dhead.inference.detectors import DEFAULT_DETECTOR, detector_arg
from trans3dhead.inference.images import load_image
from trans3dhead.inference.quality import RECOMMENDED_MIN_QUALITY
from trans3dhead.training.face_score import detector_views


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("images", nargs="*")
    parser.add_argument("--detector", default=DEFAULT_DETECTOR, type=detector_arg)
    parser.add_argument("--low-threshold", type=float, default=0.3)
    parser.add_argument("--model", default="trans3dhead", help="a named model or weights file")
    args = parser.parse_args()
    images = {p: load_image(p)[0] for p in args.images}
    for threshold in (None, args.low_threshold):
        aligner = HeadAligner(model=args.model, threads=1, score_threshold=threshold, detector=args.detector)
        label = "default detector threshold" if threshold is None else f"detector threshold {threshold}"
        for name, img in images.items():
            views = detector_views(img)
            found = [(k, f.score, f.quality) for k, v in enumerate(views) for f in aligner(v)]
            passing = sum(q is not None and q >= RECOMMENDED_MIN_QUALITY for _, _, q in found)
            print(f"{name}, {label}: {len(found)} faces over {len(views)} views, {passing} with quality >= "
                  f"{RECOMMENDED_MIN_QUALITY}: " + ", ".join(f"view {k} score {s:.3f} quality {q:.3f}" for k, s, q in found))


if __name__ == "__main__":
    main()
