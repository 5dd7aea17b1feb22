"""What the tracker's quality rule (inference/tracking.py LOST_QUALITY) changes, per shipped
Trans3DHead model, with the rule as shipped and switched off (LOST_QUALITY = 0): on the whole shared
clip (align_video, 4K frames, detect_every 10) the frames with a face, the tracked faces below
quality 0.5 (count, frame range, quality range); on the video benchmark's cached 640-px frames
(benchmarks/bench_video.py --work-dir, clips (a) and (b)) the face-frames, detector runs and faces
below 0.5. One thread.

    python scripts/measure_tracking_quality.py [--bench-frames /tmp/trans3dhead_bench_video]
"""
import argparse
from pathlib import Path

import numpy as np
import torch

import trans3dhead.inference.tracking as tracking
from trans3dhead import HeadAligner

CLIP = Path("../shared/data/video/side_profile.mp4")
MODELS = ("trans3dhead", "trans3dhead-large")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bench-frames", default="/tmp/trans3dhead_bench_video",
                        help="benchmarks/bench_video.py's --work-dir (frames_a.npy, frames_b.npy); skipped if absent")
    args = parser.parse_args()
    torch.set_num_threads(1)
    shipped = tracking.LOST_QUALITY
    for model in MODELS:
        aligner = HeadAligner(model=model, threads=1)
        for rule in (shipped, 0.0):
            tracking.LOST_QUALITY = rule
            faces = [(fr.index, f.quality) for fr in aligner.align_video(CLIP) for f in fr.faces[:1]]
            low = [(i, q) for i, q in faces if q < 0.5]
            span = f"frames {low[0][0]}-{low[-1][0]}, quality {min(q for _, q in low):.2f}-{max(q for _, q in low):.2f}" \
                if low else "none"
            print(f"clip, {model}, LOST_QUALITY {rule}: {len(faces)} frames with a face; {len(low)} below 0.5 ({span})",
                  flush=True)
        for clip in ("a", "b"):
            path = Path(args.bench_frames) / f"frames_{clip}.npy"
            if not path.is_file():
                continue
            frames = np.load(path, mmap_mode="r")
            for rule in (shipped, 0.0):
                tracking.LOST_QUALITY = rule
                tracker = aligner.tracker(detect_every=10, fps=60)
                out = [tracker(np.ascontiguousarray(f)) for f in frames]
                print(f"bench clip ({clip}), {model}, LOST_QUALITY {rule}: {sum(len(x) for x in out)} face-frames of "
                      f"{len(frames)} frames, {tracker.detections} detector runs, "
                      f"{sum(f.quality < 0.5 for x in out for f in x)} below 0.5", flush=True)
    tracking.LOST_QUALITY = shipped


if __name__ == "__main__":
    main()
