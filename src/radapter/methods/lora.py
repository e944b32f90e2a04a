"""LoRA (Hu et al., 2022) through peft, trained with the same loss as R-Adapter (``method.lora.loss``).

The targets come from the backbone handler (``lora_targets``): every linear of each transformer block of both
towers. An open_clip ``nn.MultiheadAttention`` is targeted whole (peft adapts its fused input projection and its
output projection and merges them before MHA reads its weights): ``out_proj`` alone is never a target, since
MHA reads ``out_proj.weight`` directly and a LoRA layer there would never run.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator

from ..adapters.io import export_merged
from ..backbones import get_handler
from ..tasks.base import Scorer
from .base import Method, Variant, register_method
from .objectives import PairLossMethod


def apply_lora(model, r: int, alpha: float, dropout: float, targets: list[str] | None = None):
    """Injects peft LoRA layers in place; returns the peft ``LoraModel`` (whose ``.model`` is ``model``).
    ``targets`` default to the backbone family's (module docstring)."""
    try:
        from peft import LoraConfig
        from peft.tuners.lora import LoraModel
    except ImportError as e:
        raise ImportError("method 'lora' needs peft: pip install 'radapter[lora]'") from e
    targets = targets or get_handler(model).lora_targets(model)
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets)
    for p in model.parameters():
        p.requires_grad_(False)
    return LoraModel(model, config, "default")


@register_method
class Lora(PairLossMethod, Method):
    key = "lora"
    serves_task_loss = True

    def setup(self) -> None:
        c = self.cfg.method.lora
        self.lora = apply_lora(self.model, c.r, c.lora_alpha, c.dropout)

    def merged(self):
        """A plain copy of the backbone with the LoRA update merged in."""
        return copy.deepcopy(self.lora).merge_and_unload()

    def variants(self, alphas) -> Iterator[Variant]:
        yield Variant(Scorer(self.merged().eval()))

    def export(self, directory: str, alpha: float) -> dict[str, str]:
        path = os.path.join(directory, "merged")
        export_merged(self.merged(), path)
        return {"merged": path}
