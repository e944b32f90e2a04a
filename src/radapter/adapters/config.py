"""Configuration of R-Adapter (Kim et al., ECCV 2024, arXiv 2408.05749, §3 of the paper).

One dataclass is the single source of truth for how adapters are inserted, trained (dropping, EMA) and
re-scaled at inference. It is saved in ``adapter_config.json`` and inside every checkpoint.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field, fields
from typing import Any

DROP_GRANULARITIES = ("token", "sample", "adapter")
TOWERS = ("image", "text", "both")
POSITIONS = ("attn", "mlp")


@dataclass
class RAdapterConfig:
    """How R-Adapter is put into a model.

    Defaults are the paper's ImageNet recipe: full rank, s initialised to 0.1, dropping p = 0.2 with one mask
    per token position, EMA momentum 0.999, re-scaling α = 0.5, adapters in every block of both towers.
    """

    rank: int | None = field(
        default=None,
        metadata={
            "help": "None = full rank (F is d×d). An int r < d gives the low-rank form F = U·D (D: r×d, U: d×r, "
            "U zero-initialised). r >= d trains full rank, which is at least as expressive (the authors' "
            "release inverted this test; we do not)."
        },
    )
    init_scale: float = field(
        default=0.1, metadata={"help": "Initial value of the learnable scalar s of each adapter ('scale tuning')."}
    )
    drop_prob: float = field(
        default=0.2,
        metadata={"help": "Adapter dropping probability p (training only); kept branches are scaled by 1/(1-p)."},
    )
    drop_granularity: str = field(
        default="token",
        metadata={
            "help": "'token': one Bernoulli draw per token position shared across the batch (what the authors' "
            "code does and what produced the published numbers); 'sample': one per sample; 'adapter': one per "
            "adapter per forward (the paper's formula)."
        },
    )
    ema_momentum: float = field(
        default=0.999,
        metadata={"help": "m in θ̃ ← m θ̃ + (1−m) θ after every optimizer step (0.9 for base-to-novel)."},
    )
    alpha: float = field(
        default=0.5,
        metadata={
            "help": "Re-scaling α used by eval-mode forward and, by default, by merging: M = I + α s̃ F̃. "
            "0 = the zero-shot model, 1 = the fine-tuned one (0.5 classification, 0.8 retrieval, 0.4 segmentation)."
        },
    )
    towers: str = field(default="both", metadata={"help": "Which encoders get adapters: 'image', 'text' or 'both'."})
    blocks: list[int] | None = field(
        default=None,
        metadata={
            "help": "Indices of the transformer blocks to adapt in each tower (negative counts from the end); "
            "None = every block."
        },
    )
    positions: list[str] = field(
        default_factory=lambda: list(POSITIONS),
        metadata={
            "help": "Which sub-layers of a block get an adapter: 'attn' (after the attention output "
            "projection) and/or 'mlp' (after the MLP's second linear)."
        },
    )

    def __post_init__(self) -> None:
        if self.rank is not None and (not isinstance(self.rank, int) or isinstance(self.rank, bool) or self.rank < 1):
            raise ValueError(f"RAdapterConfig.rank must be None (full rank) or a positive int, got {self.rank!r}")
        if not 0.0 <= float(self.drop_prob) < 1.0:
            raise ValueError(f"RAdapterConfig.drop_prob must be in [0, 1), got {self.drop_prob!r}")
        if self.drop_granularity not in DROP_GRANULARITIES:
            raise ValueError(
                f"RAdapterConfig.drop_granularity must be one of {DROP_GRANULARITIES}, got {self.drop_granularity!r}"
            )
        if not 0.0 <= float(self.ema_momentum) <= 1.0:
            raise ValueError(f"RAdapterConfig.ema_momentum must be in [0, 1], got {self.ema_momentum!r}")
        if self.towers not in TOWERS:
            raise ValueError(f"RAdapterConfig.towers must be one of {TOWERS}, got {self.towers!r}")
        self.positions = list(self.positions)
        bad = [p for p in self.positions if p not in POSITIONS]
        if bad or not self.positions:
            raise ValueError(
                f"RAdapterConfig.positions must be a non-empty subset of {POSITIONS}, got {self.positions!r}"
            )
        if self.blocks is not None:
            self.blocks = [int(b) for b in self.blocks]

    @property
    def tower_names(self) -> tuple[str, ...]:
        return ("image", "text") if self.towers == "both" else (self.towers,)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "RAdapterConfig") -> RAdapterConfig:
        """Builds a config from a dict, rejecting unknown keys with the closest valid name."""
        valid = [f.name for f in fields(cls)]
        for key in data:
            if key not in valid:
                close = difflib.get_close_matches(key, valid, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ValueError(f"{source}: unknown key {key!r}{hint}; valid keys: {', '.join(valid)}")
        return cls(**data)
