"""onnxruntime's own profile of an exported model by operator type: batch B, 1 thread, kernel
time per run (mean over runs) and node counts after onnxruntime's graph optimiser.

    trans3dhead export-onnx --model 3ddfa-mb05 -o /tmp/3ddfa_mb05.onnx   # the reference ships no .onnx
    python benchmarks/ort_profile.py trans3dhead/assets/trans3dhead_default.onnx /tmp/3ddfa_mb05.onnx
"""
from __future__ import annotations

import argparse
import collections
import json
import tempfile

import numpy as np
import onnx
import onnxruntime as ort


def profile(path: str, batch: int, runs: int) -> None:
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = 1, 1
    so.enable_profiling = True
    so.profile_file_prefix = tempfile.mkdtemp() + "/ort"
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    x = (np.random.default_rng(0).random((batch, 3, 120, 120)) * 255).astype(np.float32)
    for _ in range(runs):
        sess.run(None, {"crops": x})
    with open(sess.end_profiling()) as f:
        events = json.load(f)
    us, nodes = collections.Counter(), collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            us[e["args"]["op_name"]] += e["dur"]
            nodes[e["args"]["op_name"]] += 1
    total = sum(us.values())
    print(f"{path}: {len(onnx.load(path).graph.node)} nodes exported, {sum(nodes.values()) // runs} run; "
          f"kernel time {total / runs:.0f} us per run")
    for op, t in us.most_common():
        print(f"  {op:20s} {t / runs:8.1f} us {100 * t / total:5.1f}%  {nodes[op] // runs} nodes")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args()
    for path in args.models:
        profile(path, args.batch, args.runs)


if __name__ == "__main__":
    main()
