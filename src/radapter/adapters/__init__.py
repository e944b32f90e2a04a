"""R-Adapter: the module, insertion, EMA, re-scaling and merging."""

from .apply import apply_r_adapter, remove_adapters
from .config import RAdapterConfig
from .merge import iter_alpha_merges, merge_r_adapter, merged_linear_weights
from .r_adapter import (
    AdaptedSubLayer,
    RAdapter,
    adapter_parameters,
    adapter_state_dict,
    ema_update,
    iter_adapters,
    set_alpha,
)

__all__ = [
    "AdaptedSubLayer",
    "RAdapter",
    "RAdapterConfig",
    "adapter_parameters",
    "adapter_state_dict",
    "apply_r_adapter",
    "ema_update",
    "iter_adapters",
    "iter_alpha_merges",
    "merge_r_adapter",
    "merged_linear_weights",
    "remove_adapters",
    "set_alpha",
]
