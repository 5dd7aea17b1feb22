"""Compare two weights files or checkpoints tensor by tensor (a reproduction check): how many
tensors are bit-identical, the largest absolute difference, and whether the model configs agree.

    python scripts/compare_weights.py trans3dhead runs/repro_final.pt
"""
from __future__ import annotations

import argparse

import torch

from trans3dhead.weights import read_weights, resolve_weights


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("a")
    parser.add_argument("b")
    args = parser.parse_args()
    pa, pb = (read_weights(resolve_weights(x)) for x in (args.a, args.b))
    sa, sb = pa["state_dict"], pb["state_dict"]
    only = sorted(set(sa) ^ set(sb))
    shared = [k for k in sa if k in sb]
    same = [k for k in shared if sa[k].shape == sb[k].shape and torch.equal(sa[k], sb[k])]
    worst, worst_key = 0.0, None
    for k in shared:
        if sa[k].shape == sb[k].shape and sa[k].is_floating_point():
            d = float((sa[k].float() - sb[k].float()).abs().max()) if sa[k].numel() else 0.0
            if d > worst:
                worst, worst_key = d, k
    config_diff = {k: (pa["model_config"].get(k), pb["model_config"].get(k))
                   for k in set(pa["model_config"]) | set(pb["model_config"])
                   if pa["model_config"].get(k) != pb["model_config"].get(k)}
    print(f"{len(same)} of {len(shared)} shared tensors bit-identical; largest difference {worst:.3g}"
          + (f" ({worst_key})" if worst_key else "") + f"; only in one file: {only or 'none'}; "
          f"model_config differences: {config_diff or 'none'}")


if __name__ == "__main__":
    main()
