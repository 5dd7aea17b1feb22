"""Cost report: parameters, FLOPs per face, latency and throughput of the default Trans3DHead
config beside the 3ddfa-mb05 reference and MobileNet-V1 x1.0 (3DDFA_V2's default network,
random weights: only its timing matters), all measured in one run on the same inputs, in PyTorch
and in onnxruntime after export (the export form, model/export_form.py, as the shipped .onnx files
are written). The shipped weights are timed (the default, trans3dhead-large, the reference);
--extra-config models have random weights. Medians over repeats; the models are
timed in interleaved rounds so that load from other processes hits them alike. Ratios are against
the reference, and for onnxruntime batch 1, 1 thread also against MobileNet-V1 x1.0 (issue 12's
bound for trans3dhead-large: at most 2x).

Then the default product path per face, end to end at batch 1 with 1 thread: HeadAligner.align on
real AFLW2000-3D photos with their crop boxes given (so no detector): crop, network, decode to
FaceResult (image-frame landmarks, camera matrix, parameters), for the shipped models, with each
backend.

    python benchmarks/cost_report.py                       # writes benchmarks/results/cost_report.{md,json}
    python benchmarks/cost_report.py --extra-config model.dim=32 --extra-config model.dim=128,model.num_layers=3
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch.utils.flop_counter import FlopCounterMode

from trans3dhead.config import ModelConfig, apply_overrides, load_config
from trans3dhead.inference.export import export_onnx_bytes
from trans3dhead.model.reference import ReferenceMB05
from trans3dhead.model.trans3dhead import Trans3DHeadPredictor
from trans3dhead.weights import load_network

ROOT = Path(__file__).resolve().parents[1]
V1 = "mobilenet-v1 x1.0"


def flops_per_face(net) -> int:
    counter = FlopCounterMode(display=False)
    with counter:  # grad mode on: FlopCounterMode's module tracker fails under no_grad/inference_mode
        net(torch.rand(1, 3, 120, 120) * 255)
    return counter.get_total_flops()


def _time(fn, repeats: int) -> list[float]:
    fn()
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def ort_session(onnx_bytes: bytes, threads: int):
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(onnx_bytes, so, providers=["CPUExecutionProvider"])


def measure(models: dict, rounds: int, repeats: int) -> dict:
    """Interleaved timing: each round times every model at every setting once (repeats calls)."""
    x1 = torch.rand(1, 3, 120, 120) * 255
    x32 = torch.rand(32, 3, 120, 120) * 255
    sessions = {name: {t: ort_session(m["onnx"], t) for t in (1, 2)} for name, m in models.items()}
    samples = {name: {} for name in models}

    def record(name, key, secs, per):
        samples[name].setdefault(key, []).extend(s / per for s in secs)

    for _ in range(rounds):
        for name, m in models.items():
            net = m["net"]
            with torch.inference_mode():
                for threads in (1, 2):
                    torch.set_num_threads(threads)
                    record(name, f"torch_b1_t{threads}_ms", _time(lambda: net(x1), repeats), 1e-3)
                torch.set_num_threads(2)
                record(name, "torch_b32_t2_ms_per_face", _time(lambda: net(x32), max(1, repeats // 8)), 32e-3)
            for threads in (1, 2):
                sess = sessions[name][threads]
                record(name, f"ort_b1_t{threads}_ms", _time(lambda: sess.run(None, {"crops": x1.numpy()}), repeats), 1e-3)
            for threads in (1, 2):
                sess = sessions[name][threads]
                record(name, f"ort_b32_t{threads}_ms_per_face",
                       _time(lambda: sess.run(None, {"crops": x32.numpy()}), max(1, repeats // 8)), 32e-3)
    return {name: {k: float(np.median(v)) for k, v in s.items()} for name, s in samples.items()}


def build_models(extra: list[str]) -> dict:
    default = load_config(ROOT / "configs" / "default.yaml").model
    models = {"trans3dhead (default)": load_network("trans3dhead"),
              "trans3dhead-large": load_network("trans3dhead-large")}
    models.update({"3ddfa-mb05 (reference)": load_network("3ddfa-mb05"),
                   V1: ReferenceMB05(width=1.0)})
    for spec in extra:
        cfg = apply_overrides({"model": dict(vars(default))}, spec.split(","))["model"]
        models[f"trans3dhead {spec}"] = Trans3DHeadPredictor(ModelConfig(**cfg))
    out = {}
    for name, net in models.items():
        net.eval()
        out[name] = {"net": net, "onnx": export_onnx_bytes(net),
                     "params": sum(p.numel() for p in net.parameters()), "flops": flops_per_face(net)}
    return out


def to_markdown(rows: dict, ref: str) -> str:
    cols = [("params (M)", lambda r: f"{r['params'] / 1e6:.2f}"), ("GFLOPs/face", lambda r: f"{r['flops'] / 1e9:.3f}")]
    keys = ["torch_b1_t1_ms", "torch_b1_t2_ms", "torch_b32_t2_ms_per_face", "ort_b1_t1_ms", "ort_b1_t2_ms",
            "ort_b32_t1_ms_per_face", "ort_b32_t2_ms_per_face"]
    head = "| model | " + " | ".join(c for c, _ in cols) + " | " + " | ".join(keys) + " | ort b1 t1 / reference | ort b32 t1 / reference | ort b1 t1 / mobilenet-v1 x1.0 |"
    lines = [head, "|" + "---|" * (len(cols) + len(keys) + 4)]
    for name, r in rows.items():
        ratio = r["ort_b1_t1_ms"] / rows[ref]["ort_b1_t1_ms"]
        ratio32 = r["ort_b32_t1_ms_per_face"] / rows[ref]["ort_b32_t1_ms_per_face"]
        ratio_v1 = r["ort_b1_t1_ms"] / rows[V1]["ort_b1_t1_ms"]
        lines.append(f"| {name} | " + " | ".join(f(r) for _, f in cols) + " | "
                     + " | ".join(f"{r[k]:.3f}" for k in keys) + f" | {ratio:.2f}x | {ratio32:.2f}x | {ratio_v1:.2f}x |")
    return "\n".join(lines)


def product_path(rounds: int, n_images: int = 10) -> dict:
    """ms per face of HeadAligner.align (given crop box: crop + network + decode to FaceResult),
    batch 1, 1 thread, per (model, backend); interleaved rounds, medians."""
    import cv2

    from trans3dhead.inference import HeadAligner

    data = ROOT.parent / "shared" / "data" / "aflw2000_3d"
    with np.load(data / "aflw2000_3d_meta.npz") as z:
        names, boxes = list(z["names"][:n_images]), z["roi_box"][:n_images].astype(np.float64)
    images = [cv2.imread(str(data / "images" / f"{n}.jpg")) for n in names]
    aligners = {(m, b): HeadAligner(model=m, backend=b, batch_size=1, threads=1)
                for m in ("trans3dhead", "trans3dhead-large", "3ddfa-mb05") for b in ("onnx", "torch")}
    samples: dict = {k: [] for k in aligners}
    for _ in range(rounds):
        for key, aligner in aligners.items():
            for img, box in zip(images, boxes):
                samples[key].extend(_time(lambda: aligner.align(img, boxes=box[None, :4]), 3))
    return {f"{m} {b}": float(np.median(v)) * 1e3 for (m, b), v in samples.items()}


def product_markdown(path_ms: dict) -> str:
    lines = ["| default product path per face (crop + network + decode), batch 1, 1 thread | onnx (default) ms | "
             "torch ms | onnx / reference onnx |", "|---|---|---|---|"]
    ref = path_ms["3ddfa-mb05 onnx"]
    for m, label in (("trans3dhead", "trans3dhead (default)"), ("trans3dhead-large", "trans3dhead-large"),
                     ("3ddfa-mb05", "3ddfa-mb05 (reference)")):
        lines.append(f"| {label} | {path_ms[m + ' onnx']:.3f} | {path_ms[m + ' torch']:.3f} | "
                     f"{path_ms[m + ' onnx'] / ref:.2f}x |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--extra-config", action="append", default=[], help="comma-separated model overrides")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "cost_report"))
    args = parser.parse_args()
    torch.manual_seed(0)
    models = build_models(args.extra_config)
    timings = measure(models, args.rounds, args.repeats)
    path_ms = product_path(args.rounds)
    rows = {name: {"params": m["params"], "flops": m["flops"], **timings[name]} for name, m in models.items()}
    ref = "3ddfa-mb05 (reference)"
    md = (f"Cost report ({time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, "
          f"torch {torch.__version__}, onnxruntime {ort.__version__}; medians of {args.rounds} rounds x "
          f"{args.repeats} calls; ms per face)\n\n" + to_markdown(rows, ref) + "\n\n" + product_markdown(path_ms))
    print(md)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(md + "\n")
    out.with_suffix(".json").write_text(json.dumps({"reference": ref, "rows": rows, "product_path_ms": path_ms}, indent=2))


if __name__ == "__main__":
    main()
