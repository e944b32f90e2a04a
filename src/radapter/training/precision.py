"""Numeric precision of a run: fp32, bf16 autocast (CPU or CUDA) or fp16 autocast with a gradient scaler."""

from __future__ import annotations

import torch

from ..config import ConfigError

PRECISIONS = ("fp32", "bf16", "fp16")


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``optim.precision`` on ``device`` (None: no autocast)."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        if device.type != "cuda":
            raise ConfigError("optim.precision: fp16 needs CUDA (use bf16 on CPU)")
        return torch.float16
    raise ConfigError(f"optim.precision: unknown precision {precision!r}; expected one of {PRECISIONS}")
