"""Turn a training checkpoint into a shipped weights file (the inference payload only).

    python scripts/export_weights.py runs/default/checkpoints/last.ckpt trans3dhead/assets/trans3dhead_default.pt
"""
import argparse

from trans3dhead.weights import build_network, read_weights, save_weights

parser = argparse.ArgumentParser()
parser.add_argument("checkpoint")
parser.add_argument("output")
parser.add_argument("--landmark-source", choices=["branch", "3dmm", "fused"], default=None,
                    help="override the final landmark answer (chosen on the validation split)")
args = parser.parse_args()
payload = read_weights(args.checkpoint)
config = dict(payload["model_config"])
if args.landmark_source:
    config["landmark_source"] = args.landmark_source
payload["model_config"] = config
build_network(payload)  # must load strictly before it ships
save_weights(args.output, payload["arch"], config, payload["state_dict"],
             {**payload["provenance"], "checkpoint": args.checkpoint})
print("wrote", args.output, f"({sum(v.numel() for v in payload['state_dict'].values()) / 1e6:.2f} M values)")
