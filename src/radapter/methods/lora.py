"""LoRA (Hu et al., 2022) through peft, trained with the same contrastive loss as R-Adapter.

On open_clip 3.x the targets are the attention modules (``attn``: peft's ``nn.MultiheadAttention`` support
adapts the fused input projection and the output projection and merges them before MHA reads its weights)
and the MLP linears ``c_fc``/``c_proj``. ``out_proj`` alone is never a target: MHA reads
``out_proj.weight`` directly, so a LoRA layer there would never run. On Hugging Face CLIP the targets are
``q_proj, k_proj, v_proj, out_proj, fc1, fc2``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

from ..backbones import get_handler
from .base import Method, Variant, register_method
from .radapter import check_loss, contrastive_loss

TARGETS = {
    "open_clip": ["attn", "c_fc", "c_proj"],
    "transformers": ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"],
}


def apply_lora(model, r: int, alpha: float, dropout: float):
    """Injects peft LoRA layers in place; returns the peft ``LoraModel`` (whose ``.model`` is ``model``)."""
    try:
        from peft import LoraConfig
        from peft.tuners.lora import LoraModel
    except ImportError as e:
        raise ImportError("method 'lora' needs peft: pip install 'radapter[lora]'") from e
    library = get_handler(model).library
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=TARGETS[library])
    for p in model.parameters():
        p.requires_grad_(False)
    return LoraModel(model, config, "default")


@register_method
class Lora(Method):
    key = "lora"
    contrastive = True

    def setup(self) -> None:
        check_loss(self)
        m = self.cfg.method
        self.lora = apply_lora(self.model, m.lora_r, m.lora_alpha, m.lora_dropout)

    def loss(self, images, tokens, labels):
        return contrastive_loss(self, images, tokens, labels)

    def merged(self):
        """A plain copy of the backbone with the LoRA update merged in."""
        return copy.deepcopy(self.lora).merge_and_unload()

    def variants(self) -> Iterator[Variant]:
        yield Variant(self.merged().eval())

    def export(self, directory: str) -> dict[str, str]:
        import os

        from ..adapters.io import export_merged

        path = os.path.join(directory, "merged")
        export_merged(self.merged(), path)
        return {"merged": path}
