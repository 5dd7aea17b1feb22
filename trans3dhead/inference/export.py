"""ONNX export of a network's tensor-only forward, and the check that onnxruntime reproduces it.

The exported graph: input ``crops`` (B, 3, 120, 120) float32 BGR pixel values in [0, 255];
outputs ``landmarks`` (B, 68, 3) float32, package crop frame, pixels, and ``params`` (B, 62)
float32, un-normalised 3DMM parameters (3DDFA layout), and for a model with a visibility head
``visibility`` (B, 68, 3) float32 class probabilities (self-occluded, occluded, visible), and for
one with a face-score head ``face_score`` (B,) float32, the face probability. B is a
dynamic axis. We use torch's
TorchScript-based exporter (dynamo=False): it keeps the batch axis dynamic from a batch-1
example and exports in about a second (the dynamo exporter needs a batch-2 example and minutes).
Exporting needs the ``export`` extra (onnx, onnxscript); running an export needs only onnxruntime.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch

from trans3dhead.errors import Trans3DHeadError
from trans3dhead.face_model.frames import CROP_SIZE
from trans3dhead.fileio import atomic_write_bytes
from trans3dhead.model.export_form import export_form

DEFAULT_OPSET = 17
INPUT_NAME, OUTPUT_NAMES = "crops", ("landmarks", "params", "visibility")  # (no face score without visibility)


def output_names(net: torch.nn.Module, crop_size: int = CROP_SIZE) -> tuple[str, ...]:
    """The names of net's outputs: landmarks and params, then visibility and face_score where it
    has those heads."""
    if hasattr(net, "output_names"):
        return tuple(net.output_names)
    with torch.no_grad():
        n = len(net.eval()(torch.full((1, 3, crop_size, crop_size), 127.0)))
    return OUTPUT_NAMES[:n]


def export_onnx_bytes(net: torch.nn.Module, opset: int = DEFAULT_OPSET, crop_size: int = CROP_SIZE,
                      fast: bool = True, fold_constants: bool = True) -> bytes:
    """The serialised ONNX model of net.forward with a dynamic batch axis. fast: export the
    network's export form (model/export_form.py: the same function with fewer operators) rather
    than its module as written. fold_constants=False keeps the weights as the network holds them
    (batch norms not folded into the convolutions; onnxruntime folds them when it loads the model),
    which half_storage needs."""
    try:
        import onnx  # noqa: F401  (torch's exporter needs it; say so in one line, not a traceback)
    except ImportError:
        from trans3dhead.weights import NAMED_ONNX

        raise Trans3DHeadError("exporting to ONNX needs the 'export' extra: pip install 'trans3dhead[export]' "
                               f"(the models that ship an export, {', '.join(NAMED_ONNX)}, need nothing), or use backend 'torch'") from None
    net = net.eval()
    if fast:
        net = export_form(net)
    example = torch.full((2, 3, crop_size, crop_size), 127.0)
    names = output_names(net, crop_size)
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        torch.onnx.export(net, (example,), buf, dynamo=False, opset_version=opset, input_names=[INPUT_NAME],
                          do_constant_folding=fold_constants,
                          output_names=list(names), dynamic_axes={n: {0: "batch"} for n in (INPUT_NAME, *names)})
    return buf.getvalue()


HALF_MIN_VALUES = 1024  # float32 initializers at least this large are stored as float16 by half_storage


def half_storage(model: bytes, keep: set[str] = frozenset()) -> bytes:
    """The same graph with its large float32 initializers that float16 holds exactly (weights
    already rounded to float16, as `export-weights --half` stores them) stored as float16, each cast
    back to float32 by a Cast node at the top of the graph: a smaller file with the same numbers, and
    the network still computes in float32 (onnxruntime folds the casts when it loads the model).
    Constants the export form derives from the weights, and those in keep (the fixed decode arrays),
    stay float32."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    proto = onnx.load_from_string(model)
    graph = proto.graph
    casts, kept = [], []
    for init in graph.initializer:
        values = numpy_helper.to_array(init) if init.data_type == TensorProto.FLOAT else None
        if (values is not None and values.size >= HALF_MIN_VALUES and init.name not in keep
                and np.array_equal(values.astype(np.float16).astype(np.float32), values)):
            half = numpy_helper.from_array(values.astype(np.float16), init.name + "_fp16")
            kept.append(half)
            casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT,
                                          name=init.name + "_to_fp32"))
        else:
            kept.append(init)
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def fixed_constants(net: torch.nn.Module) -> set[str]:
    """Names of net's buffers that are not in its state dict (the BFM decode arrays and parameter
    statistics: fixed by the face model, not learned)."""
    saved = set(net.state_dict())
    return {name for name, _ in net.named_buffers() if name not in saved}


def export_onnx(net: torch.nn.Module, path, opset: int = DEFAULT_OPSET) -> Path:
    """Write the ONNX model to path (atomically)."""
    path = Path(path)
    atomic_write_bytes(path, export_onnx_bytes(net, opset))
    return path


def onnx_parity(net: torch.nn.Module, onnx_model: bytes | str | Path, batch_sizes=(1, 3),
                seed: int = 0) -> dict[str, float]:
    """Largest difference between torch and onnxruntime outputs on random crops over the given
    batch sizes (each one exercises the dynamic axis): landmarks in crop pixels, params in units
    of each parameter's spread (param_std; raw parameters span 1e-4 to 1e5), visibility in
    probability."""
    import onnxruntime as ort

    from trans3dhead.face_model.bfm import load_bfm_arrays

    source = onnx_model if isinstance(onnx_model, bytes) else str(onnx_model)
    sess = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(seed)
    scale = {"landmarks": np.float32(1.0), "params": load_bfm_arrays()["param_std"], "visibility": np.float32(1.0),
             "face_score": np.float32(1.0)}
    names = output_names(net)
    got_names = tuple(o.name for o in sess.get_outputs())
    if got_names != names:
        raise RuntimeError(f"ONNX outputs {got_names}; the torch network gives {names}")
    worst = {name: 0.0 for name in names}
    for b in batch_sizes:
        x = torch.rand((b, 3, 120, 120), generator=gen) * 255.0
        with torch.inference_mode():
            ref = [t.numpy() for t in net.eval()(x)]
        got = sess.run(list(names), {INPUT_NAME: x.numpy()})
        for name, r, g in zip(names, ref, got):
            if g.shape != r.shape:
                raise RuntimeError(f"ONNX output {name} has shape {g.shape} for batch {b}; torch gives {r.shape}")
            worst[name] = max(worst[name], float((np.abs(r - g) / scale[name]).max()))
    return worst
