"""One way to build the Accelerate ``Accelerator`` for every command.

On a machine without an accelerator, Accelerate forms a multi-process group (gloo) under ``torchrun`` or
``accelerate launch`` only when told to use the CPU; without ``cpu=True`` every process would think it is alone.
"""

from __future__ import annotations

import warnings

import torch
from accelerate import Accelerator


def has_accelerator() -> bool:
    mps = getattr(torch.backends, "mps", None)
    xpu = getattr(torch, "xpu", None)
    return torch.cuda.is_available() or bool(mps and mps.is_available()) or bool(xpu and xpu.is_available())


def cpu_has_fast_bf16() -> bool:
    """AMX: only its tile units make bf16 faster than full precision. With AVX-512 BF16 alone, a MiniLM training
    step (batch 32) took 1.5-2x longer in bf16 than in full precision on this project's CPU machines."""
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(probe and probe())


def pick_mixed_precision(choice: str) -> str:
    """``auto`` means bf16 on GPUs that have it and full precision elsewhere; bf16 on the CPU is available on request
    (``bf16``: about 3x faster MiniLM inference and 1.3-1.8x faster training steps on a CPU with AMX)."""
    if choice == "auto":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    if choice == "bf16" and not has_accelerator() and not cpu_has_fast_bf16():
        warnings.warn("bf16 was asked for, but this CPU has no AMX: bf16 runs slower here than full precision "
                      "(--mixed-precision no turns it off, at the cost of not matching bf16 runs bit for bit)",
                      stacklevel=2)
    return choice


def make_accelerator(**kwargs) -> Accelerator:
    return Accelerator(cpu=not has_accelerator(), **kwargs)
