"""End-to-end speed of `HeadAligner` on a folder of real photos: decode, detector, crops, network
and result assembly, at batch 1 and batched, with the share of time in the detector and in the
network. The default is 100 AFLW2000-3D images (450x450 JPEG, one face each).

    python benchmarks/bench_end_to_end.py --model 3ddfa-mb05 --threads 1

Writes benchmarks/results/end_to_end.json and .md (or --out PREFIX).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import date
from pathlib import Path

import torch

from trans3dhead.fileio import atomic_write_text
from trans3dhead.inference import HeadAligner
from trans3dhead.inference.images import IMAGE_SUFFIXES

ROOT = Path(__file__).resolve().parents[1]


class Timed:
    """Wraps a callable attribute and adds up the wall and CPU seconds spent in it."""

    def __init__(self, obj, method: str):
        self.obj, self.method, self.wall, self.cpu = obj, method, 0.0, 0.0
        self._orig = getattr(obj, method)
        setattr(obj, method, self)

    def __call__(self, *a, **k):
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            return self._orig(*a, **k)
        finally:
            self.wall += time.perf_counter() - t0
            self.cpu += time.process_time() - c0


def measure(model: str, backend: str, batch_size: int, paths: list[Path], threads: int, second_pass: bool) -> dict:
    aligner = HeadAligner(model=model, backend=backend, batch_size=batch_size, threads=threads,
                          second_pass=second_pass)
    list(aligner.align_files(paths[:4]))  # warm-up: sessions, caches, first-call costs
    det = Timed(aligner.detector, "detect_batch")
    net = Timed(aligner, "network")
    t0, c0 = time.perf_counter(), time.process_time()
    faces = sum(len(r.faces or []) for r in aligner.align_files(paths))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    # With one thread every library computes on the calling thread, so CPU seconds equal the wall
    # time of an idle machine; on a shared machine they are the robust figure (both are kept).
    return {"model": model, "backend": backend, "batch_size": batch_size, "second_pass": second_pass,
            "images": len(paths), "faces": faces, "wall_s": wall, "cpu_s": cpu,
            "images_per_s": len(paths) / wall, "images_per_cpu_s": len(paths) / cpu,
            "ms_per_image": 1000 * wall / len(paths), "cpu_ms_per_image": 1000 * cpu / len(paths),
            "detector_share": det.cpu / cpu, "network_share": net.cpu / cpu,
            "other_share": 1 - (det.cpu + net.cpu) / cpu}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", default=str(ROOT.parent / "shared/data/aflw2000_3d/images"))
    ap.add_argument("-n", type=int, default=100, help="number of images (sorted by name)")
    ap.add_argument("--model", action="append", help="repeat to compare (default 3ddfa-mb05)")
    ap.add_argument("--backend", action="append", choices=["torch", "onnx"], help="repeat to compare (default torch)")
    ap.add_argument("--batch-size", type=int, action="append", help="repeat (default 1 and 16)")
    ap.add_argument("--second-pass", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/end_to_end"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    paths = sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[: args.n]
    if not paths:
        print(f"{args.images}: no images", file=sys.stderr)
        return 2
    rows = []
    for model in args.model or ["3ddfa-mb05"]:
        for backend in args.backend or ["torch"]:
            for bs in args.batch_size or [1, 16]:
                rows.append(measure(model, backend, bs, paths, args.threads, args.second_pass))
                r = rows[-1]
                print(f"{model} {backend} batch {bs}: {r['images_per_cpu_s']:.1f} img per CPU-s "
                      f"({r['images_per_s']:.1f} img/s wall), "
                      f"detector {100 * r['detector_share']:.0f}%, network {100 * r['network_share']:.0f}%",
                      file=sys.stderr)
    base = rows[0]["images_per_cpu_s"]
    lines = [f"End-to-end HeadAligner speed, {len(paths)} photos from {Path(args.images).name} "
             f"({date.today().isoformat()}, {platform.machine()}, {args.threads} thread(s), "
             f"torch {torch.__version__}). "
             "Images per CPU-second (= images/s on an idle machine at one thread); wall-clock images/s beside "
             "it; shares of CPU time; speed relative to the first row, measured in the same run.", "",
             "| model | backend | batch | images per CPU-s | CPU ms/image | images/s (wall) | x first row | detector "
             "| network | decode, crops, rest |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['backend']} | {r['batch_size']} | {r['images_per_cpu_s']:.1f} | "
                     f"{r['cpu_ms_per_image']:.1f} | {r['images_per_s']:.1f} | {r['images_per_cpu_s'] / base:.2f} | "
                     f"{100 * r['detector_share']:.0f}% | {100 * r['network_share']:.0f}% | "
                     f"{100 * r['other_share']:.0f}% |")
    text = "\n".join(lines)
    print(text)
    cmd = "python benchmarks/bench_end_to_end.py " + " ".join(argv if argv is not None else sys.argv[1:])
    atomic_write_text(args.out + ".md", text + f"\n\nCommand: `{cmd.strip()}`\n")
    atomic_write_text(args.out + ".json", json.dumps({"command": cmd.strip(), "date": date.today().isoformat(),
                                                       "threads": args.threads, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
