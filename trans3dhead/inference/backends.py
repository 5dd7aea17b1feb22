"""The network runners behind HeadAligner: the torch network, or its ONNX export run by
onnxruntime. Both take (N, 120, 120, 3) uint8 BGR crops and return landmarks (N, 68, 3) in the
package crop frame and the 62 un-normalised parameters (N, 62), float32 numpy.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from trans3dhead.errors import Trans3DHeadError

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

    def __init__(self, net: torch.nn.Module, device: str = "cpu", threads: int | None = None):
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        self.threads = threads

    def __call__(self, crops_bgr: np.ndarray, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
        lms, params = [], []
        with torch_threads(self.threads), torch.inference_mode():
            for i in range(0, len(crops_bgr), batch_size):
                x = torch.from_numpy(np.ascontiguousarray(crops_bgr[i:i + batch_size])).to(self.device)
                lm, p = self.net(x.permute(0, 3, 1, 2).float())
                lms.append(lm.float().cpu().numpy())
                params.append(p.float().cpu().numpy())
        return _join(lms, params)


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

    def __call__(self, crops_bgr: np.ndarray, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
        lms, params = [], []
        for i in range(0, len(crops_bgr), batch_size):
            x = np.ascontiguousarray(crops_bgr[i:i + batch_size].transpose(0, 3, 1, 2), dtype=np.float32)
            lm, p = self.session.run(None, {self.input_name: x})
            lms.append(lm)
            params.append(p)
        return _join(lms, params)


def _join(lms: list, params: list) -> tuple[np.ndarray, np.ndarray]:
    if not lms:
        return np.zeros((0, 68, 3), np.float32), np.zeros((0, 62), np.float32)
    return np.concatenate(lms).astype(np.float32), np.concatenate(params).astype(np.float32)


def build_backend(model: str | None, backend: str = "torch", device: str = "cpu", threads: int | None = None):
    """model: a named model, a weights file or (backend "onnx") an exported .onnx file."""
    from trans3dhead.weights import load_network

    if backend not in BACKENDS:
        raise Trans3DHeadError(f"backend '{backend}': choose one of {', '.join(BACKENDS)}")
    is_onnx_file = model is not None and str(model).lower().endswith(".onnx")
    if backend == "torch":
        if is_onnx_file:
            raise Trans3DHeadError(f"model '{model}': an .onnx file needs backend 'onnx'")
        return TorchBackend(load_network(model), device, threads)
    if device != "cpu":
        raise Trans3DHeadError(f"device '{device}': the onnx backend runs on the CPU only; use backend 'torch'")
    if is_onnx_file:
        if not Path(model).is_file():
            raise Trans3DHeadError(f"{model}: no such ONNX file")
        return OnnxBackend(Path(model), threads)
    from trans3dhead.inference.export import export_onnx_bytes

    return OnnxBackend(export_onnx_bytes(load_network(model)), threads)
