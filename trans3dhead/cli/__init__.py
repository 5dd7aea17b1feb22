"""The ``trans3dhead`` command: parses arguments, calls the library, prints, sets the exit code.

One module per sub-command, each exposing register(subparsers); they import the library lazily
inside their command functions so that `trans3dhead --help` starts fast.
"""
from __future__ import annotations

import argparse
import sys

from trans3dhead.errors import Trans3DHeadError

COMMANDS = ("predict", "evaluate", "info", "export_onnx", "export_weights", "train", "train_visibility", "train_face_score", "label")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(prog="trans3dhead", description="3D head alignment (Trans3DHead)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"trans3dhead.cli.{name}").register(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Trans3DHeadError as exc:
        print(f"trans3dhead: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("trans3dhead: interrupted", file=sys.stderr)
        return 130
