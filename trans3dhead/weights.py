"""Named weights shipped inside the package, and the one loader for weights files.

A weights file is a torch pickle of plain types: {"format": "trans3dhead-weights", "version": 1,
"arch": "3ddfa-mb05" | "trans3dhead", "model_config": {...}, "input": {crop size, channel order,
normalisation}, "landmark_frame": ..., "state_dict": {...}, "provenance": {...}}. Everything
inference needs travels in the file; it is loaded with strict=True.

Named weights:
* ``3ddfa-mb05``: 3DDFA_V2's MobileNet-V1 x0.5 (MIT). AFLW2000-3D, provided crops:
  NME mean of bins 3.792 (3DDFA protocol) / 3.707 (package frame); pose MAE 3.902 deg.
* ``trans3dhead``: the default Trans3DHead model trained by configs/default.yaml; its figures are
  in docs/results.md.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import nn

from trans3dhead.errors import Trans3DHeadError
from trans3dhead.fileio import atomic_path

FORMAT = "trans3dhead-weights"
NAMED_WEIGHTS = {"3ddfa-mb05": "3ddfa_mb05.pt", "trans3dhead": "trans3dhead_default.pt"}
DEFAULT_MODEL = "trans3dhead"
INPUT_SPEC = {"crop_size": 120, "channels": "BGR", "pixel_range": [0, 255],
              "normalisation": "inside the network: (x - 127.5) / 128"}
LANDMARK_FRAME = "package crop frame: pixels, x right, y down, origin at the top-left corner of the crop"


def resolve_weights(name_or_path: str | None) -> Path:
    """Path of a named weights file shipped in the package, or of a user's file."""
    name = name_or_path or DEFAULT_MODEL
    if name in NAMED_WEIGHTS:
        ref = resources.files("trans3dhead.assets").joinpath(NAMED_WEIGHTS[name])
        if not ref.is_file():
            raise Trans3DHeadError(f"model '{name}': its weights file {NAMED_WEIGHTS[name]} is not in this "
                                   f"installation; use --model 3ddfa-mb05 or a checkpoint path")
        return Path(str(ref))
    path = Path(name)
    if not path.is_file():
        raise Trans3DHeadError(f"model '{name}': no such named model ({', '.join(NAMED_WEIGHTS)}) "
                               "and no such checkpoint file")
    return path


def save_weights(path, arch: str, model_config: dict, state_dict: dict, provenance: dict | None = None) -> None:
    payload = {"format": FORMAT, "version": 1, "arch": arch, "model_config": model_config, "input": INPUT_SPEC,
               "landmark_frame": LANDMARK_FRAME, "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
               "provenance": provenance or {}}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def read_weights(path) -> dict:
    """Load a weights file (or a Lightning checkpoint that holds one under 'weights')."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise Trans3DHeadError(f"{path}: not a readable weights file ({type(exc).__name__})") from None
    if isinstance(payload, dict) and "weights" in payload and isinstance(payload["weights"], dict):
        payload = payload["weights"]  # written by our training system into its checkpoints
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise Trans3DHeadError(f"{path}: not a trans3dhead weights file (convert foreign checkpoints with "
                               "scripts/convert_reference.py)")
    return payload


def build_network(payload: dict) -> nn.Module:
    arch = payload["arch"]
    if arch == "3ddfa-mb05":
        from trans3dhead.model.reference import ReferenceMB05
        net = ReferenceMB05(**payload["model_config"])
    elif arch == "trans3dhead":
        from trans3dhead.model.trans3dhead import Trans3DHeadPredictor
        net = Trans3DHeadPredictor.from_config(payload["model_config"])
    else:
        raise Trans3DHeadError(f"weights file has unknown arch '{arch}'")
    net.load_state_dict(payload["state_dict"], strict=True)
    return net.eval()


def load_network(name_or_path: str | None = None) -> nn.Module:
    """An eval-mode network: forward(crops (B, 3, 120, 120) float BGR 0..255) ->
    (landmarks (B, 68, 3) package crop frame, params (B, 62) un-normalised)."""
    return build_network(read_weights(resolve_weights(name_or_path)))


@torch.inference_mode()
def predict_crops(net: nn.Module, crops_bgr, batch_size: int = 128, progress=None):
    """Run a network over (N, 120, 120, 3) uint8 BGR crops -> landmarks (N, 68, 3), params (N, 62)."""
    lms, params = [], []
    for i in range(0, len(crops_bgr), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(crops_bgr[i:i + batch_size])).permute(0, 3, 1, 2).float()
        lm, p = net(x)
        lms.append(lm.numpy())
        params.append(p.numpy())
        if progress is not None:
            progress(len(x))
    return np.concatenate(lms).astype(np.float32), np.concatenate(params).astype(np.float32)
