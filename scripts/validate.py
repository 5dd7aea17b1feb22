"""Score models on the held-out validation split of the AFLW training crops (never AFLW2000-3D):
NME against the flip-averaged teacher (all 68 points) and against MERL-RAV human labels (inner
points 17-67, faces whose inner points are all labelled), for each landmark source.

    python scripts/validate.py 3ddfa-mb05 runs/default/checkpoints/last.ckpt
"""
import argparse
import json
from pathlib import Path

import numpy as np
import torch

from trans3dhead.data.aflw_crops import AFLWCrops
from trans3dhead.data.merl_rav import MerlRav
from trans3dhead.evaluation.metrics import nme_per_face
from trans3dhead.training.labels import Teacher, label_crops
from trans3dhead.weights import load_network, predict_crops

INNER = slice(17, 68)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("models", nargs="+")
    parser.add_argument("--crops-root", default="../shared/data/aflw_crops")
    parser.add_argument("--merl-rav-root", default="../shared/data/merl_rav")
    parser.add_argument("--split", default="configs/splits/aflw_crops_val.txt")
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.set_num_threads(2)
    reader = AFLWCrops(args.crops_root)
    names = {ln.strip() for ln in Path(args.split).read_text().splitlines() if ln.strip() and not ln.startswith("#")}
    idx = np.array([i for i, n in enumerate(reader.names) if n in names])
    crops = np.stack([reader.read_crop(int(i)) for i in idx])
    teacher = label_crops(Teacher(load_network("3ddfa-mb05")), crops)
    human = MerlRav(args.merl_rav_root, reader).crop_labels()
    pos = {int(c): k for k, c in enumerate(human["crop_index"])}
    h_rows = [(j, pos[int(i)]) for j, i in enumerate(idx) if int(i) in pos]
    h_pts = np.stack([human["pts68"][k] for _, k in h_rows])
    full = np.isfinite(h_pts[:, INNER]).all((1, 2))
    h_sel = np.array([j for j, _ in h_rows])[full]
    h_pts = h_pts[full]
    results = {"teacher (flip-averaged)": {"nme_human_inner": float(nme_per_face(teacher["lm"][h_sel][:, INNER],
                                                                                 h_pts[:, INNER]).mean())}}
    for name in args.models:
        net = load_network(name)
        for source in (["branch", "3dmm", "fused"] if hasattr(net, "config") else ["3dmm"]):
            if hasattr(net, "config"):
                net.config.landmark_source = source
            lm, _ = predict_crops(net, crops)
            results[f"{name} [{source}]"] = {
                "nme_teacher": float(nme_per_face(lm, teacher["lm"]).mean()),
                "nme_human_inner": float(nme_per_face(lm[h_sel][:, INNER], h_pts[:, INNER]).mean())}
    print(f"validation split: {len(idx)} crops; human-labelled with all inner points: {len(h_sel)}")
    print("| model [landmarks] | NME vs teacher (68) | NME vs MERL-RAV (inner 51) |\n|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r.get('nme_teacher', float('nan')):.3f} | {r['nme_human_inner']:.3f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
