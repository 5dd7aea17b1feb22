"""Where the default photo path's time goes, one thread, batch 1: a cProfile of
HeadAligner.align_files over the first N photos of a folder (top functions by own time), then the
CPU time of decode, detection and the whole align per image-size class.

    python scripts/profile_photo_path.py PHOTOS -n 100
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from trans3dhead.inference import HeadAligner
from trans3dhead.inference.detectors import DEFAULT_DETECTOR
from trans3dhead.inference.images import IMAGE_SUFFIXES, load_image


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("folder")
    parser.add_argument("-n", type=int, default=100, help="photos for the cProfile pass (sorted by name)")
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--detector", default=DEFAULT_DETECTOR, help=f"default {DEFAULT_DETECTOR}")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    paths = sorted(p for p in Path(args.folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    aligner = HeadAligner(threads=1, batch_size=1, detector=args.detector)
    list(aligner.align_files(paths[:4]))  # warm-up
    profile = cProfile.Profile()
    profile.enable()
    faces = sum(len(r.faces or []) for r in aligner.align_files(paths[:args.n]))
    profile.disable()
    print(f"{faces} faces in {min(args.n, len(paths))} photos")
    pstats.Stats(profile).sort_stats("tottime").print_stats(args.top)
    groups: dict[str, list] = {}
    for p in paths:
        c0 = time.process_time()
        img = load_image(p)[0]
        c1 = time.process_time()
        aligner.detector.detect_batch([img])
        c2 = time.process_time()
        aligner.align(img)
        c3 = time.process_time()
        key = f"{img.shape[1]}x{img.shape[0]}" if max(img.shape[:2]) > 1000 else "long side <= 1000"
        groups.setdefault(key, []).append((c1 - c0, c2 - c1, c3 - c2))
    for key, rows in groups.items():
        a = np.array(rows) * 1000
        med = np.median(a, 0)
        print(f"{key}: {len(rows)} photos; median CPU ms decode {med[0]:.1f}, detect {med[1]:.1f}, "
              f"align (detect + network) {med[2]:.1f}; total s {a[:, 0].sum() / 1000:.2f} / "
              f"{a[:, 1].sum() / 1000:.2f} / {a[:, 2].sum() / 1000:.2f}")


if __name__ == "__main__":
    main()
