"""`trans3dhead train`: train Trans3DHead from a YAML config (Lightning), or resume a run."""
from __future__ import annotations

from pathlib import Path


def cmd_train(args) -> int:
    from trans3dhead.config import load_config
    from trans3dhead.training.run import run_training

    config = load_config(args.config, args.overrides)
    run_dir = args.run_dir or str(Path("runs") / config.name)
    trainer = run_training(config, run_dir, resume=args.resume, enable_progress_bar=not args.no_progress)
    if trainer.is_global_zero:  # every process of a multi-process run ends here; one says so
        print(f"trained: {run_dir}/checkpoints/last.ckpt (use it with --model, or write a weights file with "
              f"`trans3dhead export-weights {run_dir}/checkpoints/last.ckpt -o my_weights.pt`)")
    return 0


def register(sub) -> None:
    tr = sub.add_parser("train", help="train Trans3DHead from a YAML config (Lightning)")
    tr.add_argument("--config", required=True, help="YAML file, e.g. configs/default.yaml")
    tr.add_argument("--run-dir", help="output folder (default runs/<config name>)")
    tr.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint")
    tr.add_argument("--no-progress", action="store_true")
    tr.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.max_epochs=3")
    tr.set_defaults(func=cmd_train)
