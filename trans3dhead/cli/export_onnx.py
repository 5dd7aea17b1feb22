"""`trans3dhead export-onnx`: the network as ONNX with a dynamic batch axis, checked against torch
before it is written."""
from __future__ import annotations

from trans3dhead.cli.common import MODEL_NAMES
from trans3dhead.errors import Trans3DHeadError

EXIT_OK = 0


def cmd_export_onnx(args) -> int:
    from trans3dhead.fileio import atomic_write_bytes
    from trans3dhead.inference.export import export_onnx_bytes, fixed_constants, half_storage, onnx_parity
    from trans3dhead.weights import DEFAULT_MODEL, load_network

    net = load_network(args.model)
    model = export_onnx_bytes(net, opset=args.opset, fold_constants=not args.half)
    if args.half:  # the weights float16 holds exactly (those `export-weights --half` stored so)
        half = half_storage(model, keep=fixed_constants(net))
        if len(half) > 0.9 * len(model):
            raise Trans3DHeadError(f"{args.output}: not written: --half stores as float16 only weights that "
                                   "float16 holds exactly, and this model has few; write its weights with "
                                   "`export-weights --half` first")
        model = half
    diff = onnx_parity(net, model, batch_sizes=(1, 3))
    extra = "".join(f", {name} {diff[name]:.2e}" for name in ("visibility", "face_score") if name in diff)
    if diff["landmarks"] > 1e-2 or diff["params"] > 1e-3 or max(diff.get(n, 0.0) for n in ("visibility", "face_score")) > 1e-3:
        raise Trans3DHeadError(f"{args.output}: not written: onnxruntime differs from torch (landmarks "
                               f"{diff['landmarks']:.3g} px, params {diff['params']:.3g} std{extra})")
    atomic_write_bytes(args.output, model)
    storage = ", float16 storage" if args.half else ""
    print(f"wrote {args.output} (model {args.model or DEFAULT_MODEL}, opset {args.opset}, dynamic batch{storage}); "
          f"onnxruntime vs torch: landmarks {diff['landmarks']:.2e} px, params {diff['params']:.2e} std{extra}")
    return EXIT_OK


def register(subparsers) -> None:
    from trans3dhead.inference.export import DEFAULT_OPSET

    e = subparsers.add_parser("export-onnx", help="export the network to ONNX with a dynamic batch axis")
    e.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    e.add_argument("--model", default=None, help=f"named model ({MODEL_NAMES}) or weights file (default: trans3dhead)")
    e.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    e.add_argument("--half", action="store_true",
                   help="store as float16 the weights that float16 holds exactly, i.e. those of a weights file "
                        "written by `export-weights --half` (half the file; the graph still computes in float32)")
    e.set_defaults(func=cmd_export_onnx)
