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

FLATTEN_3D = "TORCH_LINEAR_FLATTEN_3D"


def use_fast_frozen_linear() -> bool:
    """Sets ``TORCH_LINEAR_FLATTEN_3D=1`` unless the variable is already set; returns whether it is on."""
    os.environ.setdefault(FLATTEN_3D, "1")
    return os.environ[FLATTEN_3D] == "1"
