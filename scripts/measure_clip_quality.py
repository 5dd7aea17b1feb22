"""Faces found on every Nth frame of the shared 4K clip and how many have a quality below the
recommended threshold, per detector and detection size (docs/results.md, "FaceBoxes and the
detector fallback"): a poor detector box gives a poor crop, which the face score rates low.

    python scripts/measure_clip_quality.py --every 20
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2

from trans3dhead.inference import HeadAligner
from trans3dhead.inference.detectors import build_detector
from trans3dhead.inference.quality import RECOMMENDED_MIN_QUALITY

CLIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "video" / "side_profile.mp4"
SETTINGS = (("faceboxes", 1920), ("faceboxes", 1280), ("faceboxes", 960), ("retinaface", 1280))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=20)
    parser.add_argument("--model", default=None)
    args = parser.parse_args(argv)
    cap, frames, i = cv2.VideoCapture(str(CLIP)), [], 0
    while cap.grab():
        if i % args.every == 0:
            frames.append((i, cap.retrieve()[1]))
        i += 1
    for name, side in SETTINGS:
        aligner = HeadAligner(model=args.model, detector=build_detector(name, threads=1, max_side=side), threads=1)
        faces = [(k, f.quality) for k, frame in frames for f in aligner(frame)]
        low = [(k, round(q, 2)) for k, q in faces if q < RECOMMENDED_MIN_QUALITY]
        print(f"{name} at {side} px (with its fallback): {len(faces)} faces on {len(frames)} frames, "
              f"{len(low)} below {RECOMMENDED_MIN_QUALITY}: {low}")


if __name__ == "__main__":
    main()
