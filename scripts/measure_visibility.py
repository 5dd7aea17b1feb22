"""Measurements behind the visibility head's design (docs/results.md, "Per-landmark visibility"):

    python scripts/measure_visibility.py heads     # head variants on 2 views, validation split
    python scripts/measure_visibility.py fits --weights W   # the shipped head's fit settings swept for W
    python scripts/measure_visibility.py latency   # onnxruntime batch-1 ms with and without the head

heads: the frozen shipped network's last-layer landmark query states on the labelled training crops
(as is and mirrored) and validation crops (training/visibility.py), each head variant fitted with
fit_classifier and scored with visibility_report. latency: the shipped network exported without a
head, with a per-landmark linear head and with the shipped head (random weights; only the time
matters), interleaved, 300 runs, medians, one thread.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from trans3dhead.config import VisibilityFitConfig, load_config
from trans3dhead.model.trans3dhead import VisibilityHead
from trans3dhead.data.aflw_crops import AFLWCrops
from trans3dhead.training.visibility import (fit_classifier, labelled_split, query_states, view_crops,
                                             visibility_report)
from trans3dhead.weights import build_network, build_payload, read_weights, resolve_weights


class SharedHead(nn.Module):
    """One map for all landmarks: Linear(D, 3), or Linear-GELU-Linear with a hidden width."""

    def __init__(self, dim: int, hidden: int = 0):
        super().__init__()
        self.net = nn.Linear(dim, 3) if hidden == 0 else nn.Sequential(nn.Linear(dim, hidden), nn.GELU(),
                                                                        nn.Linear(hidden, 3))

    def forward(self, x):
        return self.net(x)


def two_view_states(net, cfg, reader: AFLWCrops, split: dict):
    """The network's last-layer landmark query states and pose on the labelled training crops as
    is and mirrored (training/visibility.py view_crops): (queries, pose_deg, targets) tensors, and
    the same outputs on the validation crops as arrays."""
    from trans3dhead.training.datamodule import cached_crops

    crops = cached_crops(reader, Path(cfg.data.cache_dir))
    qs, ps, ts = [], [], []
    for view in range(2):
        x, t = view_crops(crops[split["train_index"]], split["train_targets"], view, cfg)
        out = query_states(net, x)
        qs.append(torch.from_numpy(out["queries"]))
        ps.append(torch.from_numpy(out["pose_deg"]))
        ts.append(torch.from_numpy(t))
    return torch.cat(qs), torch.cat(ps), torch.cat(ts), query_states(net, crops[split["val_index"]])


def fit_and_score(module, inputs, targets, val_inputs, split: dict, val_yaw, fit_cfg) -> tuple[str, str]:
    """Fit module on (inputs, targets), score it on the validation inputs: (its last training
    epoch's log line, the AUC summary)."""
    torch.manual_seed(0)
    losses = []
    fit_classifier(module, inputs, targets, fit_cfg, log=losses.append)
    with torch.no_grad():
        probs = torch.softmax(module(torch.as_tensor(val_inputs)), -1).numpy()
    r = visibility_report(probs, split["val_targets"], val_yaw)["all"]
    mean_auc = np.mean([r[c]["auc"] for c in ("self_occluded", "occluded", "visible")])
    return losses[-1].strip(), (f"visible AUC {r['visible_auc']:.3f}, self-occluded {r['self_occluded']['auc']:.3f}, "
                                f"occluded {r['occluded']['auc']:.3f}, mean of the three AUCs {mean_auc:.3f}")


def heads():
    cfg = load_config("configs/visibility.yaml", [])
    net = build_network(read_weights(resolve_weights("trans3dhead")))
    reader = AFLWCrops(cfg.data.crops_root)
    split = labelled_split(cfg, reader)
    q, _, t, val = two_view_states(net, cfg, reader, split)
    val_yaw = reader.yaw_deg[split["val_index"]]
    for name, head, epochs in (("shared linear", SharedHead(64), 12), ("shared MLP 64", SharedHead(64, 64), 12),
                               ("per-landmark linear", VisibilityHead(64, 0), 12),
                               ("per-landmark linear, 24 epochs", VisibilityHead(64, 0), 24),
                               ("shared 64 + per-landmark linear", VisibilityHead(64, 64), 12)):
        _, summary = fit_and_score(head, q, t, val["queries"], split, val_yaw, VisibilityFitConfig(epochs=epochs))
        print(f"{name}: {summary}", flush=True)


FITS = (  # (name, hidden, standardise the inputs, fit settings)
    ("hidden 64, lr 3e-3 (configs/visibility.yaml)", 64, False, {}),
    ("hidden 64, lr 1e-2", 64, False, {"lr": 1e-2}),
    ("hidden 64, standardised inputs", 64, True, {}),
    ("hidden 128, standardised inputs", 128, True, {}),
    ("hidden 64, standardised inputs, 24 epochs", 64, True, {"epochs": 24}),
)


def fits(weights: str, cache: str | None):
    """The fit settings of FITS on W's query states (2 views), each scored on the validation split
    beside the pose-only prior; the final training cross-entropy is printed too (underfitting).
    Standardised fits wrap the head as visibility.standardise does (training/visibility.py).
    cache: a file keeping the query states between runs (computed once)."""
    from trans3dhead.training.visibility import Float32Inputs, PosePrior, feature_moments

    cfg = load_config("configs/visibility.yaml", [])
    reader = AFLWCrops(cfg.data.crops_root)
    split = labelled_split(cfg, reader)
    if cache and Path(cache).is_file():
        q, p, t, val = torch.load(cache, weights_only=False)
    else:
        payload = read_weights(resolve_weights(weights))
        state = {k: v for k, v in payload["state_dict"].items() if not k.startswith("model.visibility_head.")}
        net = build_network(build_payload("trans3dhead", dict(payload["model_config"], visibility=False), state))
        q, p, t, val = two_view_states(net, cfg, reader, split)
        if cache:
            torch.save((q, p, t, val), cache)
    val_yaw = reader.yaw_deg[split["val_index"]]
    dim = q.shape[-1]
    print(f"{weights}: query states of width {dim}, {len(q)} training rows, {len(val_yaw)} validation crops")
    loss, summary = fit_and_score(PosePrior(), p, t, val["pose_deg"], split, val_yaw, VisibilityFitConfig())
    print(f"pose-only prior: {loss}; {summary}", flush=True)
    for name, hidden, standardise, settings in FITS:
        torch.manual_seed(0)
        head = VisibilityHead(dim, hidden)
        module = Float32Inputs(head, *feature_moments(q)) if standardise else head
        loss, summary = fit_and_score(module, q, t, val["queries"], split, val_yaw, VisibilityFitConfig(**settings))
        print(f"{name}: {loss}; {summary}", flush=True)


def latency():
    import onnxruntime as ort

    from trans3dhead.inference.export import export_onnx_bytes

    payload = read_weights(resolve_weights("trans3dhead"))
    base = {k: v for k, v in payload["state_dict"].items() if not k.startswith("model.visibility_head.")}
    sessions = {}
    for name, hidden in (("no head", None), ("per-landmark linear", 0), ("shipped head (hidden 64)", 64)):
        config, state = dict(payload["model_config"], visibility=hidden is not None), dict(base)
        if hidden is not None:
            config["visibility_hidden"] = hidden
            state.update({f"model.visibility_head.{k}": v for k, v in VisibilityHead(64, hidden).state_dict().items()})
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        sessions[name] = ort.InferenceSession(export_onnx_bytes(build_network(build_payload("trans3dhead", config, state))),
                                              opts, providers=["CPUExecutionProvider"])
    x = (np.random.default_rng(0).random((1, 3, 120, 120)) * 255).astype(np.float32)
    times = {k: [] for k in sessions}
    for _ in range(300):
        for k, s in sessions.items():
            t0 = time.perf_counter()
            s.run(None, {"crops": x})
            times[k].append(time.perf_counter() - t0)
    for k, v in times.items():
        print(f"{k}: {np.median(v) * 1e3:.3f} ms")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["heads", "fits", "latency"])
    parser.add_argument("--weights", default="trans3dhead", help="fits: the network (name or file)")
    parser.add_argument("--cache", default=None, help="fits: a file keeping the query states between runs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.what == "fits":
        fits(args.weights, args.cache)
    else:
        {"heads": heads, "latency": latency}[args.what]()


if __name__ == "__main__":
    main()
