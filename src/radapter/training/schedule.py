"""Learning-rate schedule of every recipe: linear warm-up, then cosine decay to zero (FLYP / R-Adapter)."""

from __future__ import annotations

import math

import torch


def warmup_cosine(step: int, warmup: int, total: int) -> float:
    """Multiplier of the base learning rate at optimizer step ``step`` (0-based)."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if total <= warmup:
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer, warmup: int, total: int, starts: list[int] | None = None
) -> torch.optim.lr_scheduler.LambdaLR:
    """One warm-up + cosine per parameter group; ``starts[i]`` delays group i (its lr is 0 before it).

    LP-FT uses the delay: the head trains from step 0, the tower only after the linear probe.
    """
    starts = starts or [0] * len(optimizer.param_groups)

    def make(start: int):
        def fn(step: int) -> float:
            if step < start:
                return 0.0
            return warmup_cosine(step - start, warmup, total - start)

        return fn

    return torch.optim.lr_scheduler.LambdaLR(optimizer, [make(s) for s in starts])


def param_groups(named_params, lr: float, weight_decay: float, **extra) -> list[dict]:
    """AdamW groups with weight decay on >=2-D tensors only (no decay on biases, norms, scales)."""
    decay, no_decay = [], []
    for _, p in named_params:
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = []
    if decay:
        groups.append({"params": decay, "lr": lr, "weight_decay": weight_decay, **extra})
    if no_decay:
        groups.append({"params": no_decay, "lr": lr, "weight_decay": 0.0, **extra})
    return groups
