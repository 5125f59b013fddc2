"""The torch device for a --device flag: "auto" picks cuda, then mps, then cpu."""

from __future__ import annotations

import torch

from fastnst import UserError


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """"auto" -> cuda (this rank's GPU), then mps, then cpu; an explicit device must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r} (use auto, cpu, cuda, cuda:N or mps)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA GPU is available")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError("--device mps: MPS is not available")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device
