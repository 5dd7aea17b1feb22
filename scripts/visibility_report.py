"""The visibility report of models that have a visibility head, on the validation split's
MERL-RAV-labelled crops (never AFLW2000-3D), as `trans3dhead train-visibility --report` writes it
when it fits the head (training/visibility.py): per |yaw| bin and class, AUC and recall; the
accuracy; the AUC of "visible". For checking a shipped file (e.g. after float16 storage).

    python scripts/visibility_report.py trans3dhead trans3dhead-large [--json out.json]
"""
import argparse
import json
from pathlib import Path

import torch

from trans3dhead.config import load_config
from trans3dhead.data.aflw_crops import AFLWCrops
from trans3dhead.model.batching import forward_crops
from trans3dhead.training.datamodule import cached_crops
from trans3dhead.training.visibility import format_report, labelled_split, visibility_report
from trans3dhead.weights import load_network


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("models", nargs="+")
    parser.add_argument("--config", default="configs/visibility.yaml", help="the data paths and exclusion lists")
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.set_num_threads(2)
    cfg = load_config(args.config, [])
    reader = AFLWCrops(cfg.data.crops_root)
    split = labelled_split(cfg, reader)
    crops = cached_crops(reader, Path(cfg.data.cache_dir))[split["val_index"]]
    yaw = reader.yaw_deg[split["val_index"]]
    reports = {}
    for name in args.models:
        net = load_network(name)
        if "visibility" not in net.output_names:
            raise SystemExit(f"{name}: no visibility head")
        probs = forward_crops(lambda x: dict(zip(net.output_names, net(x))), crops, 200)["visibility"]
        reports[name] = visibility_report(probs, split["val_targets"], yaw)
    print(format_report(reports))
    if args.json:
        Path(args.json).write_text(json.dumps(reports, indent=1))


if __name__ == "__main__":
    main()
