"""Argument types and helpers shared by the sub-commands."""
from __future__ import annotations

import argparse
import math


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
