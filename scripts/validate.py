"""Score models on the held-out validation split of the AFLW training crops (never AFLW2000-3D):
NME against the flip-averaged teacher (all 68 points) and against MERL-RAV human labels (inner
points 17-67, faces whose inner points are all labelled), for each landmark source, with the
same scoring as training's per-epoch validation (trans3dhead/evaluation/validation.py). Crops in
the exclusion lists (default: the near-duplicates of AFLW2000-3D photos) are left out.

    python scripts/validate.py 3ddfa-mb05 trans3dhead runs/attempt7/checkpoints/last.ckpt
    python scripts/validate.py trans3dhead --branch-weight 0.7 --branch-weight 0.9  # other fusions
    python scripts/validate.py trans3dhead --flip   # answers averaged with the mirrored crops'
"""
import argparse
import json
from pathlib import Path

import numpy as np
import torch

from trans3dhead.config import NEAR_DUPLICATES
from trans3dhead.data.aflw_crops import AFLWCrops, read_exclusion_lists, read_split
from trans3dhead.data.merl_rav import MerlRav
from trans3dhead.evaluation.validation import fully_labelled_inner, validation_scores
from trans3dhead.training.labels import Teacher, label_crops
from trans3dhead.weights import build_network, predict_crops, read_weights, resolve_weights


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("models", nargs="+")
    parser.add_argument("--crops-root", default="../shared/data/aflw_crops")
    parser.add_argument("--merl-rav-root", default="../shared/data/merl_rav")
    parser.add_argument("--split", default="configs/splits/aflw_crops_val.txt")
    parser.add_argument("--exclude", action="append", default=None,
                        help=f"exclusion list CSV (repeatable; default {NEAR_DUPLICATES}; 'none' for no list)")
    parser.add_argument("--branch-weight", type=float, action="append", default=[],
                        help="also score fused = W x branch + (1 - W) x 3DMM landmarks (repeatable)")
    parser.add_argument("--flip", action="store_true",
                        help="score each model's answers averaged with those of the mirrored crops (test-time flip)")
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.set_num_threads(2)
    reader = AFLWCrops(args.crops_root)
    names = read_split(args.split)
    excluded, _ = read_exclusion_lists([p for p in (args.exclude or [NEAR_DUPLICATES]) if p != "none"])
    idx = np.array([i for i, n in enumerate(reader.names) if n in names and n not in excluded])
    crops = np.stack([reader.read_crop(int(i)) for i in idx])
    teacher = label_crops(Teacher(build_network(read_weights(resolve_weights("3ddfa-mb05")))), crops)["lm"]
    human = MerlRav(args.merl_rav_root, reader).crop_labels()
    pos = {int(c): k for k, c in enumerate(human["crop_index"])}
    h_lm, h_w = np.zeros((len(idx), 68, 2), np.float32), np.zeros((len(idx), 68), np.float32)
    for j, i in enumerate(idx):
        if int(i) in pos:
            pts, vis = human["pts68"][pos[int(i)]], human["visibility"][pos[int(i)]]
            h_w[j] = np.isfinite(pts).all(-1) & (vis > 0)
            h_lm[j] = np.nan_to_num(pts)
    def predict(net):
        return predict_crops(net, crops, flip=args.flip)[0]

    results = {}
    for name in args.models:
        payload = read_weights(resolve_weights(name))
        sources = {}
        if payload["arch"] != "trans3dhead":  # the reference: its landmarks are its 3DMM's
            sources["3dmm"] = predict(build_network(payload))
        for source in (["branch", "3dmm"] if payload["arch"] == "trans3dhead" else []):
            payload["model_config"] = {**payload["model_config"], "landmark_source": source}
            sources[source] = predict(build_network(payload))
        for w in args.branch_weight if "branch" in sources else []:
            sources[f"fused@{w:g}"] = w * sources["branch"] + (1.0 - w) * sources["3dmm"]
        results[name] = validation_scores(sources, teacher, h_lm, h_w)
    print(f"validation split: {len(idx)} crops ({len(excluded & names)} excluded); human-labelled with all inner "
          f"points: {int(fully_labelled_inner(h_w).sum())}" + ("; models scored flip-averaged" if args.flip else ""))
    print("| model [landmarks] | NME vs teacher (68) | NME vs MERL-RAV (inner 51) |\n|---|---|---|")
    first = next(iter(results.values()))
    print(f"| teacher (flip-averaged) | - | {first['nme_human_inner_teacher']:.3f} |")
    for name, r in results.items():
        for source in ("branch", "3dmm", "fused", *(f"fused@{w:g}" for w in args.branch_weight)):
            if f"nme_teacher_{source}" in r:
                print(f"| {name} [{source}] | {r[f'nme_teacher_{source}']:.3f} | {r[f'nme_human_inner_{source}']:.3f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
