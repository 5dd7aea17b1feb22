"""`trans3dhead train-visibility`: fit the per-landmark visibility head on a trained network kept
frozen, on MERL-RAV's classes (training/visibility.py), and write the weights file with the head."""
from __future__ import annotations


def cmd_train_visibility(args) -> int:
    from trans3dhead.cli.common import run_head_stage
    from trans3dhead.training.visibility import fit_visibility, format_report

    return run_head_stage(args, fit_visibility, format_report, "visibility")


def register(sub) -> None:
    from trans3dhead.cli.common import add_head_stage_arguments

    p = sub.add_parser("train-visibility", help="fit the per-landmark visibility head on a trained network")
    add_head_stage_arguments(p, "configs/visibility.yaml (data and visibility sections)", "visibility.hidden=64")
    p.set_defaults(func=cmd_train_visibility)
