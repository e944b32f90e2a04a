"""Opt-in speed settings of torch that change no result.

:func:`use_fast_frozen_linear`: open_clip's attention is ``nn.MultiheadAttention(batch_first=True)``, which
transposes its input to [tokens, batch, d] — a non-contiguous view — before the q/k/v projection. When the
projection weight does not require grad (R-Adapter freezes it), torch's matmul does not fold that 3-D input
into one GEMM: it runs a batched GEMM of ``tokens`` tiny [batch, d] @ [d, 3d] products against an expanded
weight, forward and backward — 30 % of a ViT-B/16 R-Adapter training step on CPU (benchmarks/README.md).
``TORCH_LINEAR_FLATTEN_3D=1`` makes ``F.linear`` copy such an input to 2-D and call one addmm, which is what
already happens whenever the weight requires grad, so it never costs more. torch reads the variable once, at
the first such call, so call this before running a model. The ``radapter`` command line calls it; a library
user opts in by calling it (setting the variable to ``0`` beforehand keeps torch's default).
"""

from __future__ import annotations

import os

import torch

FLATTEN_3D = "TORCH_LINEAR_FLATTEN_3D"


def use_fast_frozen_linear() -> bool:
    """Sets ``TORCH_LINEAR_FLATTEN_3D=1`` unless the variable is already set; returns whether it is on."""
    os.environ.setdefault(FLATTEN_3D, "1")
    return os.environ[FLATTEN_3D] == "1"


def busy_cores() -> float:
    """Cores other processes keep busy: the 1-minute load average (0 where the OS has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


def choose_threads(requested: int | None = None) -> int:
    """Sets and returns torch's intra-op thread count.

    ``requested``: that many threads. ``None``: torch's default (one per core) on an idle machine, and on a
    loaded one only the cores left free (at least 1) — torch's OpenMP threads spin against other processes'
    threads, and on a busy 2-core machine a training step was measured 3.7× slower with 2 threads than with 1
    (3.15 s vs 0.85 s).
    """
    if requested is not None:
        if requested < 1:
            raise ValueError(f"threads must be >= 1, got {requested}")
        threads = requested
    else:
        cores = os.cpu_count() or 1
        free = cores - int(round(busy_cores()))
        threads = torch.get_num_threads() if free >= cores else max(1, free)
    torch.set_num_threads(threads)
    return threads
