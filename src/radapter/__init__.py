"""radapter: R-Adapter (Kim, Jeong, Kim, Kwak, ECCV 2024) for CLIP-like models.

Linear residual adapters in every block of both encoders, adapter dropping, EMA accumulation, re-scaling
(WiSE-FT for free) and the MPM-NCE loss; adapters merge back into the base weights so inference costs
exactly what the original model costs.
"""

from .adapters import (
    RAdapter,
    RAdapterConfig,
    adapter_parameters,
    adapter_state_dict,
    apply_r_adapter,
    ema_update,
    iter_adapters,
    iter_alpha_merges,
    merge_r_adapter,
    remove_adapters,
    set_alpha,
)
from .adapters.io import count_parameters, export_merged, load_adapter, print_trainable_parameters, save_adapter
from .backbones import UnsupportedBackboneError, encode_image, encode_text, get_handler
from .backbones.loading import LoadedModel, load_model
from .errors import ConfigError, UserError
from .losses import clip_loss, gather_batch, head_cross_entropy, mpm_nce_loss, sigmoid_loss
from .utils.perf import use_fast_frozen_linear
from .version import __version__
from .zeroshot import OPENAI_IMAGENET_TEMPLATES, build_zero_shot_head

__all__ = [
    "OPENAI_IMAGENET_TEMPLATES",
    "LoadedModel",
    "RAdapter",
    "RAdapterConfig",
    "UnsupportedBackboneError",
    "UserError",
    "ConfigError",
    "__version__",
    "adapter_parameters",
    "adapter_state_dict",
    "apply_r_adapter",
    "build_zero_shot_head",
    "clip_loss",
    "count_parameters",
    "ema_update",
    "encode_image",
    "encode_text",
    "export_merged",
    "gather_batch",
    "get_handler",
    "head_cross_entropy",
    "iter_adapters",
    "iter_alpha_merges",
    "load_adapter",
    "load_model",
    "merge_r_adapter",
    "mpm_nce_loss",
    "print_trainable_parameters",
    "remove_adapters",
    "save_adapter",
    "set_alpha",
    "sigmoid_loss",
    "use_fast_frozen_linear",
]
