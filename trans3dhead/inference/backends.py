"""The network runners behind HeadAligner: the torch network, or its ONNX export run by
onnxruntime. Both take (N, S, S, 3) uint8 BGR crops (S = ``crop_size``, from the weights file)
and return landmarks (N, 68, 3) in the package crop frame, the 62 un-normalised parameters
(N, 62) and a dict of the optional heads' outputs the model has: ``visibility``, the per-landmark
class probabilities (N, 68, 3), and ``face_score``, the face probability (N,); float32 numpy.

trans3dhead and trans3dhead-large ship their ONNX exports inside the package (assets/*.onnx,
checked against the torch weights by the test suite), so the onnx backend needs no exporter for
them; any other weights file, and the reference 3ddfa-mb05 (weights only, for the package's size
bound), is exported on the fly, which needs the ``export`` extra.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from trans3dhead.errors import Trans3DHeadError
from trans3dhead.face_model.frames import CROP_SIZE
from trans3dhead.model.batching import crop_batches

BACKENDS = ("torch", "onnx")


@contextmanager
def torch_threads(n: int | None):
    """Use n intra-op threads inside the block and restore the previous count after it."""
    if not n:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class TorchBackend:
    name = "torch"

    def __init__(self, net: torch.nn.Module, device: str = "cpu", threads: int | None = None,
                 crop_size: int = CROP_SIZE):
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        self.threads = threads
        self.crop_size = crop_size

    def __call__(self, crops_bgr: np.ndarray, batch_size: int = 32):
        outs = []
        with torch_threads(self.threads), torch.inference_mode():
            for x in crop_batches(crops_bgr, batch_size, self.device):
                outs.append([t.float().cpu().numpy() for t in self.net(x)])
        return _join(outs, self.output_names)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(getattr(self.net, "output_names", ("landmarks", "params")))


class OnnxBackend:
    name = "onnx"

    def __init__(self, model: bytes | str | Path, threads: int | None = None):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        source = model if isinstance(model, bytes) else str(model)
        try:
            self.session = ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
        except Exception as exc:
            where = "exported model" if isinstance(model, bytes) else str(model)
            raise Trans3DHeadError(f"{where}: onnxruntime cannot load it ({type(exc).__name__}); "
                                   "write it with `trans3dhead export-onnx`") from None
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = tuple(o.name for o in self.session.get_outputs())
        side = self.session.get_inputs()[0].shape[-1]
        self.crop_size = side if isinstance(side, int) else CROP_SIZE

    def __call__(self, crops_bgr: np.ndarray, batch_size: int = 32):
        outs = []
        for i in range(0, len(crops_bgr), batch_size):
            x = np.ascontiguousarray(crops_bgr[i:i + batch_size].transpose(0, 3, 1, 2), dtype=np.float32)
            outs.append(self.session.run(None, {self.input_name: x}))
        return _join(outs, self.output_names)


EMPTY_SHAPES = {"landmarks": (0, 68, 3), "params": (0, 62), "visibility": (0, 68, 3), "face_score": (0,)}


def _join(outs: list, names: tuple[str, ...]):
    """Per-batch output lists (in the order of names) -> landmarks (N, 68, 3), params (N, 62) and
    {name: array} of the other outputs."""
    if outs:
        joined = [np.concatenate(parts).astype(np.float32) for parts in zip(*outs)]
    else:
        joined = [np.zeros(EMPTY_SHAPES[n], np.float32) for n in names]
    return joined[0], joined[1], dict(zip(names[2:], joined[2:]))


def build_backend(model: str | None, backend: str = "torch", device: str = "cpu", threads: int | None = None):
    """model: a named model, a weights file or (backend "onnx") an exported .onnx file. The runner's
    ``landmark_source`` says which landmarks it answers with (branch, 3dmm or fused; None for an
    .onnx file, which does not record it) and ``disagreement_factor`` how far apart its branch and
    3DMM landmarks are per unit of the gap between its answer and its 3DMM landmarks (None: no
    branch, or unknown)."""
    from trans3dhead.weights import (DEFAULT_MODEL, NAMED_ONNX, build_network, crop_size_of,
                                     disagreement_factor_of, landmark_source_of, named_asset, read_weights,
                                     resolve_weights)

    if backend not in BACKENDS:
        raise Trans3DHeadError(f"backend '{backend}': choose one of {', '.join(BACKENDS)}")
    is_onnx_file = model is not None and str(model).lower().endswith(".onnx")
    if backend == "torch" and is_onnx_file:
        raise Trans3DHeadError(f"model '{model}': an .onnx file needs backend 'onnx'")
    if backend == "onnx" and device != "cpu":
        raise Trans3DHeadError(f"device '{device}': the onnx backend runs on the CPU only; use backend 'torch'")
    if is_onnx_file:
        if not Path(model).is_file():
            raise Trans3DHeadError(f"{model}: no such ONNX file")
        runner = OnnxBackend(Path(model), threads)
        runner.landmark_source = runner.disagreement_factor = None
        return runner
    payload = read_weights(resolve_weights(model))
    name = model or DEFAULT_MODEL
    if backend == "torch":
        runner = TorchBackend(build_network(payload), device, threads, crop_size_of(payload))
    elif name in NAMED_ONNX:
        runner = OnnxBackend(named_asset(NAMED_ONNX[name], name), threads)
    else:
        from trans3dhead.inference.export import export_onnx_bytes

        runner = OnnxBackend(export_onnx_bytes(build_network(payload), crop_size=crop_size_of(payload)), threads)
    runner.landmark_source = landmark_source_of(payload)
    runner.disagreement_factor = disagreement_factor_of(payload)
    return runner
