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

from trans3dhead.model.batching import forward_crops

from trans3dhead.errors import Trans3DHeadError
from trans3dhead.face_model.frames import CROP_SIZE
from trans3dhead.face_model.landmarks68 import mirror_landmarks
from trans3dhead.fileio import atomic_path
from trans3dhead.model.backbone import PIXEL_MEAN, PIXEL_STD

FORMAT = "trans3dhead-weights"
NAMED_WEIGHTS = {"3ddfa-mb05": "3ddfa_mb05.pt", "trans3dhead": "trans3dhead_default.pt",
                 "trans3dhead-large": "trans3dhead_large.pt"}
# The ONNX exports shipped beside the weights (written by `trans3dhead export-onnx --model NAME`,
# with --half for the float16-stored large model; the test suite checks each against its torch
# weights), so the onnx backend needs no exporter for them. The reference ships none (all shipped
# weights together stay under 50 MB, issue 12): with backend "onnx" it is exported in memory at load
# (0.2 s here, 2 s cold: docs/results.md; the 'export' extra).
NAMED_ONNX = {"trans3dhead": "trans3dhead_default.onnx", "trans3dhead-large": "trans3dhead_large.onnx"}
DEFAULT_MODEL = "trans3dhead"
INPUT_SPEC = {"crop_size": CROP_SIZE, "channels": "BGR", "pixel_range": [0, 255],
              "normalisation": f"inside the network: (x - {PIXEL_MEAN:g}) / {PIXEL_STD:g}"}
LANDMARK_FRAME = "package crop frame: pixels, x right, y down, origin at the top-left corner of the crop"


def named_asset(file_name: str, model: str) -> Path:
    """Path of a file shipped in trans3dhead/assets for a named model."""
    ref = resources.files("trans3dhead.assets").joinpath(file_name)
    if not ref.is_file():
        raise Trans3DHeadError(f"model '{model}': its file {file_name} is not in this installation; "
                               "reinstall trans3dhead, or pass a weights file")
    return Path(str(ref))


def resolve_weights(name_or_path: str | None) -> Path:
    """Path of a named weights file shipped in the package, or of a user's file."""
    name = name_or_path or DEFAULT_MODEL
    if name in NAMED_WEIGHTS:
        return named_asset(NAMED_WEIGHTS[name], name)
    path = Path(name)
    if not path.is_file():
        raise Trans3DHeadError(f"model '{name}': no such named model ({', '.join(NAMED_WEIGHTS)}) "
                               "and no such checkpoint file")
    return path


def build_payload(arch: str, model_config: dict, state_dict: dict, provenance: dict | None = None,
                  input_spec: dict | None = None) -> dict:
    """The content of a weights file (the one builder: training checkpoints and exports use it)."""
    return {"format": FORMAT, "version": 1, "arch": arch, "model_config": dict(model_config),
            "input": dict(input_spec or INPUT_SPEC), "landmark_frame": LANDMARK_FRAME,
            "state_dict": {k: v.detach().cpu().clone() for k, v in state_dict.items()},
            "provenance": provenance or {}}


def save_weights(path, payload: dict) -> None:
    """Write a payload from build_payload (atomically)."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def read_weights(path) -> dict:
    """Load a weights file (or a Lightning checkpoint that holds one under 'weights')."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise Trans3DHeadError(f"{path}: not a readable weights file ({type(exc).__name__})") from None
    if isinstance(payload, dict) and "weights" in payload and isinstance(payload["weights"], dict):
        payload = payload["weights"]  # written by our training system into its checkpoints
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise Trans3DHeadError(f"{path}: not a trans3dhead weights file (a named model, a file written by "
                               "`trans3dhead export-weights`, or a training checkpoint)")
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


def crop_size_of(payload: dict) -> int:
    """The crop side a weights file says its network takes (its input spec)."""
    return int(payload.get("input", INPUT_SPEC).get("crop_size", INPUT_SPEC["crop_size"]))


def landmark_source_of(payload: dict) -> str:
    """Which landmarks a weights file's network answers with: "branch", "3dmm" or "fused" (the
    reference network has only its 3DMM's)."""
    if payload["arch"] != "trans3dhead":
        return "3dmm"
    return payload["model_config"].get("landmark_source", "branch")


def disagreement_factor_of(payload: dict) -> float | None:
    """What scales |answered landmarks - 3DMM landmarks| back to |branch - 3DMM landmarks|: 1 for
    the branch's answer, 1 / branch_weight for fused landmarks, None for a network whose answer is
    its 3DMM's (no second answer to compare)."""
    source = landmark_source_of(payload)
    if source == "branch":
        return 1.0
    if source == "fused":
        return 1.0 / float(payload["model_config"].get("branch_weight", 0.5))
    return None


def predict_crops(net: nn.Module, crops_bgr, batch_size: int = 128, progress=None, flip: bool = False):
    """Run a network over (N, S, S, 3) uint8 BGR crops -> landmarks (N, 68, 3), params (N, 62)
    (a visibility output, where the network has one, is not returned). flip: the landmarks averaged
    with those of the mirrored crops, mapped back (test-time flip); the params stay the crops' own."""
    out = forward_crops(lambda x: dict(zip(("lm", "params"), net(x))), crops_bgr, batch_size, progress=progress)
    if not out:
        return np.zeros((0, 68, 3), np.float32), np.zeros((0, 62), np.float32)
    lm = out["lm"]
    if flip:
        crops_bgr = np.asarray(crops_bgr)
        mirrored = predict_crops(net, np.ascontiguousarray(crops_bgr[:, :, ::-1]), batch_size, progress)[0]
        lm = (lm + mirror_landmarks(mirrored, crops_bgr.shape[2])) / 2
    return lm, out["params"]
