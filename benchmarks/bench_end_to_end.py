"""End-to-end speed of `HeadAligner` on a folder of real photos: decode, detector, crops, network
and result assembly, at batch 1 and batched, with the share of time in the detector and in the
network. The default is 100 AFLW2000-3D images (450x450 JPEG, one face each).

    python benchmarks/bench_end_to_end.py --model 3ddfa-mb05 --threads 1
    python benchmarks/bench_end_to_end.py --model trans3dhead --backend onnx --batch-size 1 \
        --peer-3ddfa-v2 /path/to/3DDFA_V2     # + a row for 3DDFA_V2's own pipeline

The peer row runs 3DDFA_V2's own ONNX pipeline (FaceBoxes_ONNX boxes, TDDFA_ONNX parameters,
recon_vers sparse landmarks, as its demo.py --onnx does) from a clone given on the command line
(never committed; its FaceBoxes NMS must be built, see its readme), with its onnxruntime sessions
held to --threads intra-op threads like ours. Same images, same process, same timing. What the clone
at 1b6c676 needed here (2026-12-07): cython; in FaceBoxes/utils/nms/cpu_nms.pyx the numpy aliases
numpy 2 dropped (np.float -> double, np.int_t -> np.int64_t, np.int -> np.int64), then its
build_cpu_nms.sh; configs/bfm_noneck_v3.pkl written from the shared BFM arrays in the layout its
bfm/bfm.py reads (u, w_shp, w_exp flattened per vertex to (3N, k) float32, tri (3, M), keypoints as
indices into the flattened arrays); its exports run once with torch's legacy exporter (this script
passes dynamo=False).
--detector and --detect-size compare our detectors and detection sizes (rows for each).

Writes benchmarks/results/end_to_end.json and .md (or --out PREFIX).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import date
from itertools import product
from pathlib import Path

import torch

from trans3dhead.fileio import atomic_write_text
from trans3dhead.inference import HeadAligner
from trans3dhead.inference.detectors import DEFAULT_DETECTOR, DETECTORS, detector_arg
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


def measure(model: str, backend: str, batch_size: int, paths: list[Path], threads: int, second_pass: bool,
            detector: str | None = None, detect_size: int | None = None) -> dict:
    from trans3dhead.inference.detectors import build_detector

    det = build_detector(detector or DEFAULT_DETECTOR, threads, max_side=detect_size)
    aligner = HeadAligner(model=model, backend=backend, batch_size=batch_size, threads=threads,
                          second_pass=second_pass, detector=det)
    list(aligner.align_files(paths[:4]))  # warm-up: sessions, caches, first-call costs
    det = Timed(aligner.detector, "detect_batch")
    net = Timed(aligner, "network")
    t0, c0 = time.perf_counter(), time.process_time()
    faces = sum(len(r.faces or []) for r in aligner.align_files(paths))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    # With one thread every library computes on the calling thread, so CPU seconds equal the wall
    # time of an idle machine; on a shared machine they are the robust figure (both are kept).
    return {"model": model, "backend": backend, "batch_size": batch_size, "second_pass": second_pass,
            "detector": f"{aligner.detector.name} at {aligner.detector.max_side} px", "images": len(paths), "faces": faces, "wall_s": wall, "cpu_s": cpu,
            "images_per_s": len(paths) / wall, "images_per_cpu_s": len(paths) / cpu,
            "ms_per_image": 1000 * wall / len(paths), "cpu_ms_per_image": 1000 * cpu / len(paths),
            "detector_share": det.cpu / cpu, "network_share": net.cpu / cpu,
            "other_share": 1 - (det.cpu + net.cpu) / cpu}


def measure_peer_3ddfa_v2(root: str, paths: list[Path], threads: int) -> dict:
    """3DDFA_V2's own pipeline per image: cv2.imread, FaceBoxes_ONNX, TDDFA_ONNX, recon_vers."""
    import os

    import cv2
    import onnxruntime
    import yaml

    root = str(Path(root).resolve())
    original = onnxruntime.InferenceSession

    def one_thread_session(path, opts=None, *a, **k):  # its code passes no options: hold its thread count
        opts = opts or onnxruntime.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        return original(path, opts, *a, providers=["CPUExecutionProvider"])

    import torch.onnx

    export = torch.onnx.export

    def legacy_export(*a, **k):  # its converters predate torch's dynamo exporter (the default now)
        return export(*a, **{**k, "dynamo": False})

    onnxruntime.InferenceSession = one_thread_session
    torch.onnx.export = legacy_export
    cwd = os.getcwd()
    sys.path.insert(0, root)
    os.chdir(root)  # its configs name files relative to the clone
    try:
        from FaceBoxes.FaceBoxes_ONNX import FaceBoxes_ONNX
        from TDDFA_ONNX import TDDFA_ONNX

        cfg = yaml.safe_load(open("configs/mb05_120x120.yml"))
        boxes_fn, tddfa = FaceBoxes_ONNX(), TDDFA_ONNX(**cfg)

        def run(p):
            img = cv2.imread(str(Path(cwd) / p) if not Path(p).is_absolute() else str(p))
            boxes = boxes_fn.__call__(img)
            if not boxes:
                return 0
            params, rois = tddfa(img, boxes)
            tddfa.recon_vers(params, rois, dense_flag=False)
            return len(boxes)

        for p in paths[:4]:
            run(p)
        det = Timed(boxes_fn, "__call__")
        t0, c0 = time.perf_counter(), time.process_time()
        faces = sum(run(p) for p in paths)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        os.chdir(cwd)
        sys.path.remove(root)
        onnxruntime.InferenceSession = original
        torch.onnx.export = export
    return {"model": "3DDFA_V2 pipeline (FaceBoxes + mb05, its own code)", "backend": "onnx", "batch_size": 1,
            "second_pass": False, "detector": "its FaceBoxes at <= 720x1080 px", "images": len(paths), "faces": faces, "wall_s": wall, "cpu_s": cpu,
            "images_per_s": len(paths) / wall, "images_per_cpu_s": len(paths) / cpu,
            "ms_per_image": 1000 * wall / len(paths), "cpu_ms_per_image": 1000 * cpu / len(paths),
            "detector_share": det.cpu / cpu, "network_share": float("nan"), "other_share": float("nan")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", default=str(ROOT.parent / "shared/data/aflw2000_3d/images"))
    ap.add_argument("-n", type=int, default=100, help="number of images (sorted by name)")
    ap.add_argument("--model", action="append", help="repeat to compare (default 3ddfa-mb05)")
    ap.add_argument("--backend", action="append", choices=["torch", "onnx"], help="repeat to compare (default torch)")
    ap.add_argument("--batch-size", type=int, action="append", help="repeat (default 1 and 16)")
    ap.add_argument("--second-pass", action="store_true")
    ap.add_argument("--detector", action="append", type=detector_arg, metavar="{%s,yunet:PATH}" % ",".join(sorted(DETECTORS)),
                    help=f"repeat to compare (default {DEFAULT_DETECTOR})")
    ap.add_argument("--detect-size", type=int, action="append",
                    help="the detector's max_side in pixels; repeat to compare (default: the detector's own)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--peer-3ddfa-v2", metavar="CLONE", help="also time 3DDFA_V2's own pipeline from this clone")
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
            for bs, detector, size in product(args.batch_size or [1, 16], args.detector or [None],
                                              args.detect_size or [None]):
                rows.append(measure(model, backend, bs, paths, args.threads, args.second_pass, detector, size))
                r = rows[-1]
                print(f"{model} {backend} batch {bs}, {r['detector']}: {r['images_per_cpu_s']:.1f} img per CPU-s "
                      f"({r['images_per_s']:.1f} img/s wall), "
                      f"detector {100 * r['detector_share']:.0f}%, network {100 * r['network_share']:.0f}%",
                      file=sys.stderr)
    if args.peer_3ddfa_v2:
        rows.append(measure_peer_3ddfa_v2(args.peer_3ddfa_v2, paths, args.threads))
        r = rows[-1]
        print(f"3DDFA_V2 pipeline: {r['images_per_cpu_s']:.1f} img per CPU-s ({r['images_per_s']:.1f} img/s wall), "
              f"detector {100 * r['detector_share']:.0f}%, {r['faces']} faces", file=sys.stderr)
    base = rows[0]["images_per_cpu_s"]
    lines = [f"End-to-end HeadAligner speed, {len(paths)} photos from {Path(args.images).name} "
             f"({date.today().isoformat()}, {platform.machine()}, {args.threads} thread(s), "
             f"torch {torch.__version__}). "
             "Images per CPU-second (= images/s on an idle machine at one thread); wall-clock images/s beside "
             "it; shares of CPU time; speed relative to the first row, measured in the same run.", "",
             "| model | backend | batch | detector | faces | images per CPU-s | CPU ms/image | images/s (wall) | x first row "
             "| detector share | network | decode, crops, rest |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['backend']} | {r['batch_size']} | {r['detector']} | {r['faces']} | "
                     f"{r['images_per_cpu_s']:.1f} | "
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
