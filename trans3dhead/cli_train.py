"""Sub-commands ``train`` and ``label``."""
from __future__ import annotations

from pathlib import Path


def cmd_train(args) -> int:
    from trans3dhead.config import load_config
    from trans3dhead.train import run_training

    config = load_config(args.config, args.overrides)
    run_dir = args.run_dir or str(Path("runs") / config.name)
    run_training(config, run_dir, resume=args.resume, enable_progress_bar=not args.no_progress)
    print(f"trained: {run_dir}/checkpoints/last.ckpt (use it with --model, or export the weights with "
          f"scripts/export_weights.py)")
    return 0


def cmd_label(args) -> int:
    import numpy as np
    import torch

    from trans3dhead.data.aflw_crops import AFLWCrops
    from trans3dhead.labels import label_views
    from trans3dhead.train import write_label_cache
    from trans3dhead.weights import load_network

    if args.threads:
        torch.set_num_threads(args.threads)
    reader = AFLWCrops(args.data_root)
    n = min(args.limit or len(reader), len(reader))
    crops = np.stack([reader.read_crop(i) for i in range(n)])
    labels = label_views(load_network(args.teacher), crops)
    write_label_cache(args.output, labels, reader.names[:n], args.teacher)
    print(f"wrote {args.output}: {n} crops labelled by {args.teacher} (direct and mirrored views, flip-averaged)")
    return 0


def register(sub) -> None:
    tr = sub.add_parser("train", help="train Trans3DHead from a YAML config (Lightning)")
    tr.add_argument("--config", required=True, help="YAML file, e.g. configs/default.yaml")
    tr.add_argument("--run-dir", help="output folder (default runs/<config name>)")
    tr.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint")
    tr.add_argument("--no-progress", action="store_true")
    tr.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.max_epochs=3")
    tr.set_defaults(func=cmd_train)

    lb = sub.add_parser("label", help="cache teacher labels for the AFLW training crops (use with data.teacher_labels=FILE)")
    lb.add_argument("--data-root", required=True, help="the aflw_crops folder")
    lb.add_argument("--teacher", default="3ddfa-mb05")
    lb.add_argument("-o", "--output", required=True, help=".npz to write")
    lb.add_argument("--threads", type=int, default=None)
    lb.add_argument("--limit", type=int, default=None, help="label only the first N crops")
    lb.set_defaults(func=cmd_label)
