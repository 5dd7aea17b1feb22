"""Argument types and helpers shared by the sub-commands."""
from __future__ import annotations

import argparse
import math

# The named models, as the --model help texts list them (weights.NAMED_WEIGHTS is the registry; a
# test keeps the two equal; written out here so that building the parser does not import torch).
MODEL_NAMES = "trans3dhead (the default), trans3dhead-large, 3ddfa-mb05 (the reference)"


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None


def _finite_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text}: must be a finite number")
    return value


def _check(value, ok: bool, rule: str):
    if not ok:
        raise argparse.ArgumentTypeError(f"{value:g}: must {rule}")
    return value


def positive_int(text: str) -> int:
    value = _whole_number(text)
    return _check(value, value >= 1, "be at least 1")


def non_negative_int(text: str) -> int:
    value = _whole_number(text)
    return _check(value, value >= 0, "be 0 or more")


def unit_interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    return _check(value, 0.0 <= value <= 1.0, "lie in [0, 1]")  # nan and inf fail here too


def positive_float(text: str) -> float:
    value = _finite_number(text)
    return _check(value, value > 0, "be greater than 0")


def non_negative_float(text: str) -> float:
    value = _finite_number(text)
    return _check(value, value >= 0, "be 0 or more")


def set_threads(n: int | None) -> None:
    """The CLI owns its process: set torch's thread count for the whole run."""
    if n:
        import torch
        torch.set_num_threads(n)


def run_head_stage(args, fit, format_report, head: str) -> int:
    """A recipe stage that fits one head on a trained network kept frozen (train-visibility,
    train-face-score): fit(config, payload) -> (payload with the head, report); the weights file is
    written, the report printed and, with --report, written as JSON."""
    import json

    from trans3dhead.config import load_config
    from trans3dhead.fileio import atomic_write_text
    from trans3dhead.weights import read_weights, resolve_weights, save_weights

    config = load_config(args.config, args.overrides)
    set_threads(args.threads or config.train.threads)
    out, report = fit(config, read_weights(resolve_weights(args.weights)))
    save_weights(args.output, out)
    print(format_report(report))
    if args.report:
        atomic_write_text(args.report, json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output} (the network of {args.weights} with a {head} head)")
    return 0


def add_head_stage_arguments(p, config_example: str, override_example: str) -> None:
    p.add_argument("--config", required=True, help=f"YAML file with the stage's sections, e.g. {config_example}")
    p.add_argument("--weights", required=True, help="a named model, weights file or training checkpoint")
    p.add_argument("-o", "--output", required=True, help="the weights file (.pt) to write")
    p.add_argument("--threads", type=int, help="CPU threads (default: the config's train.threads)")
    p.add_argument("--report", help="also write the report as JSON here")
    p.add_argument("overrides", nargs="*", help=f"dotted overrides, e.g. {override_example}")
