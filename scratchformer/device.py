"""Pick where tensors live: CUDA when available, then Apple's MPS, else the CPU."""
from __future__ import annotations

import os

import torch


def pick_device(prefer: str | None = None) -> torch.device:
    """Return ``prefer`` if given (or $SCRATCHFORMER_DEVICE), else cuda > mps > cpu."""
    prefer = prefer or os.environ.get("SCRATCHFORMER_DEVICE")
    if prefer:
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
