"""`trans3dhead export-onnx`: the network as ONNX with a dynamic batch axis, checked against torch
before it is written."""
from __future__ import annotations

from trans3dhead.errors import Trans3DHeadError

EXIT_OK = 0


def cmd_export_onnx(args) -> int:
    from trans3dhead.fileio import atomic_write_bytes
    from trans3dhead.inference.export import export_onnx_bytes, onnx_parity
    from trans3dhead.weights import DEFAULT_MODEL, load_network

    net = load_network(args.model)
    model = export_onnx_bytes(net, opset=args.opset)
    diff = onnx_parity(net, model, batch_sizes=(1, 3))
    vis = f", visibility {diff['visibility']:.2e}" if "visibility" in diff else ""
    if diff["landmarks"] > 1e-2 or diff["params"] > 1e-3 or diff.get("visibility", 0.0) > 1e-3:
        raise Trans3DHeadError(f"{args.output}: not written: onnxruntime differs from torch (landmarks "
                               f"{diff['landmarks']:.3g} px, params {diff['params']:.3g} std{vis})")
    atomic_write_bytes(args.output, model)
    print(f"wrote {args.output} (model {args.model or DEFAULT_MODEL}, opset {args.opset}, dynamic batch); "
          f"onnxruntime vs torch: landmarks {diff['landmarks']:.2e} px, params {diff['params']:.2e} std{vis}")
    return EXIT_OK


def register(subparsers) -> None:
    from trans3dhead.inference.export import DEFAULT_OPSET

    e = subparsers.add_parser("export-onnx", help="export the network to ONNX with a dynamic batch axis")
    e.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    e.add_argument("--model", default=None, help="named model or weights file (default: the package's default)")
    e.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    e.set_defaults(func=cmd_export_onnx)
