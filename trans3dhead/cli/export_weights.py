"""`trans3dhead export-weights`: a training checkpoint -> a weights file holding the inference
payload only (what HeadAligner and `--model FILE` load), loaded strictly before it is written."""
from __future__ import annotations

# kept float32 by --half: small, and their folded input standardisation needs float32's range
FLOAT32_HEADS = ("model.visibility_head.", "model.face_score_head.")


def cmd_export_weights(args) -> int:
    from trans3dhead.weights import build_network, build_payload, read_weights, save_weights

    payload = read_weights(args.checkpoint)
    config = dict(payload["model_config"])
    if args.landmark_source:
        config["landmark_source"] = args.landmark_source
    if args.branch_weight is not None:
        config["branch_weight"] = args.branch_weight
    state = payload["state_dict"]
    if args.half:  # float16 storage: the loader copies it into the float32 network
        state = {k: v.half() if v.is_floating_point() and not k.startswith(FLOAT32_HEADS) else v
                 for k, v in state.items()}
    out = build_payload(payload["arch"], config, state,
                        {**payload["provenance"], "checkpoint": str(args.checkpoint),
                         "storage": "float16" if args.half else "float32"}, payload.get("input"))
    build_network(out)  # must load strictly before it ships
    save_weights(args.output, out)
    n = sum(v.numel() for v in out["state_dict"].values())
    print(f"wrote {args.output} ({n / 1e6:.2f} M values{', float16' if args.half else ''}, "
          f"landmarks: {config.get('landmark_source', 'branch')})")
    return 0


def register(sub) -> None:
    p = sub.add_parser("export-weights", help="write the inference weights file of a training checkpoint")
    p.add_argument("checkpoint", help="a training checkpoint, e.g. runs/default/checkpoints/last.ckpt")
    p.add_argument("-o", "--output", required=True, help="the weights file (.pt) to write")
    p.add_argument("--landmark-source", choices=["branch", "3dmm", "fused"], default=None,
                   help="the final landmark answer (chosen on the validation split); default: as trained")
    p.add_argument("--branch-weight", type=float, default=None, metavar="W",
                   help="fused landmarks = W x branch + (1 - W) x 3DMM landmarks (chosen on the validation "
                        "split); default: as trained (0.5)")
    p.add_argument("--half", action="store_true",
                   help="store the weights as float16 (half the file; the network still computes in float32); "
                        "the small visibility and face-score heads stay float32")
    p.set_defaults(func=cmd_export_weights)
