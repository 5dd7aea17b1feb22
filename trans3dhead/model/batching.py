"""The one loop that feeds uint8 crops to a network: (N, S, S, 3) uint8 BGR numpy in, float32
(B, 3, S, S) tensors of BGR pixel values 0..255 out, batch by batch (the networks normalise
inside). Used by the inference backend, the teacher labeller and the evaluation harness.
"""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch


def crop_batches(crops_bgr: np.ndarray, batch_size: int, device: torch.device | str | None = None
                 ) -> Iterator[torch.Tensor]:
    for i in range(0, len(crops_bgr), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(crops_bgr[i:i + batch_size]))
        if device is not None:
            x = x.to(device)
        yield x.permute(0, 3, 1, 2).float()


@torch.inference_mode()
def forward_crops(fn: Callable[[torch.Tensor], dict], crops_bgr: np.ndarray, batch_size: int = 128,
                  device=None, progress=None) -> dict[str, np.ndarray]:
    """Run fn (a batch tensor -> dict of tensors) over all crops: dict of concatenated float32
    numpy arrays (empty input: an empty dict)."""
    out: dict[str, list] = {}
    for x in crop_batches(crops_bgr, batch_size, device):
        for k, v in fn(x).items():
            out.setdefault(k, []).append(v.float().cpu().numpy())
        if progress is not None:
            progress(len(x))
    return {k: np.concatenate(v).astype(np.float32) for k, v in out.items()}
