"""`trans3dhead train-face-score`: fit the face-score head on a trained network kept frozen, against
crops off the face and non-face images (training/face_score.py), and write the weights file with
the head."""
from __future__ import annotations

import json


def cmd_train_face_score(args) -> int:
    from trans3dhead.cli.common import set_threads
    from trans3dhead.config import load_config
    from trans3dhead.fileio import atomic_write_text
    from trans3dhead.training.face_score import fit_face_score, format_face_score_report
    from trans3dhead.weights import read_weights, resolve_weights, save_weights

    config = load_config(args.config, args.overrides)
    set_threads(args.threads or config.train.threads)
    payload = read_weights(resolve_weights(args.weights))
    out, report = fit_face_score(config, payload)
    save_weights(args.output, out)
    print(format_face_score_report(report))
    if args.report:
        atomic_write_text(args.report, json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output} (the network of {args.weights} with a face-score head)")
    return 0


def register(sub) -> None:
    p = sub.add_parser("train-face-score", help="fit the face-score head on a trained network")
    p.add_argument("--config", required=True, help="YAML file with the data and face_score sections, "
                   "e.g. configs/face_score.yaml")
    p.add_argument("--weights", required=True, help="a named model, weights file or training checkpoint")
    p.add_argument("-o", "--output", required=True, help="the weights file (.pt) to write")
    p.add_argument("--threads", type=int, help="CPU threads (default: the config's train.threads)")
    p.add_argument("--report", help="also write the held-out report as JSON here")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. face_score.positives=3000")
    p.set_defaults(func=cmd_train_face_score)
