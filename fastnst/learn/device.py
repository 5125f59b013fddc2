"""The torch device for a device setting ("auto" picks cuda, then mps, then cpu) and the
numeric precision for a precision setting."""

from __future__ import annotations

import logging
import platform

import torch

from fastnst import UserError
from fastnst.config import PRECISIONS

log = logging.getLogger(__name__)


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """"auto" -> cuda (this rank's GPU), then mps, then cpu; an explicit device must be available."""
    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("mps" if torch.backends.mps.is_available() else "cpu")
        name = "cuda"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r} (use auto, cpu, cuda, cuda:N or mps)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("device cuda: no CUDA GPU is available")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError("device mps: MPS is not available")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    if device.type == "cuda" and device.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        if device.index == local_rank > 0:  # torchrun: one process per GPU
            raise UserError(f"process {local_rank} of torchrun has no GPU: this machine has {count}; start at most "
                            f"{count} processes per machine (torchrun --nproc-per-node) or use device cpu")
        raise UserError(f"device {name}: this machine has {count} CUDA GPU(s), cuda:0 and up")
    return device


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU has bf16 instructions (AVX512-BF16 or AMX). Without them, bf16
    convolutions are emulated, far slower than fp32 (docs/training.md). oneDNN's own check says
    yes on any AVX-512 CPU, so on x86 we ask for the instructions themselves."""
    if not torch.backends.mkldnn.is_available():
        return False
    has_avx512_bf16 = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    if has_avx512_bf16 is not None and platform.machine().lower() in ("x86_64", "amd64"):
        return bool(has_avx512_bf16() or torch.cpu._is_amx_tile_supported())
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def pick_precision(name: str, device: torch.device, launch_bound: bool = False) -> tuple[str, str]:
    """(precision, why) for a precision setting on ``device``: "auto" is bf16 where the device runs
    bf16 convolutions natively and fp32 elsewhere, and fp32 on a GPU for ``launch_bound`` work
    (a net so small that its steps wait on kernel launches, which autocast adds to; there bf16
    is slower, docs/training.md). "fp32" and "bf16" are taken as given."""
    if name not in PRECISIONS:
        raise UserError(f"unknown precision {name!r} (use {', '.join(PRECISIONS)})")
    if device.type == "cuda":
        fast = torch.cuda.is_bf16_supported()
        where = f"CUDA GPU {torch.cuda.get_device_name(device)}"
    elif device.type == "cpu":
        fast = cpu_has_fast_bf16()
        where = "this CPU"
    else:
        fast, where = False, device.type
    support = f"{where} {'has' if fast else 'has no'} native bf16"
    if name == "auto" and device.type == "cuda" and fast and launch_bound:
        return "fp32", "auto: bf16 is slower for this small net on a GPU; precision bf16 for large batches"
    if name == "auto":
        return ("bf16" if fast else "fp32"), f"auto: {support}"
    if name == "bf16" and not fast:
        log.warning("precision bf16: %s, so bf16 runs emulated and much slower than fp32", support)
    return name, "as asked"


def autocast(device: torch.device, precision: str):
    """The autocast context of ``precision``: bf16 convolutions (and matmuls) or nothing."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
