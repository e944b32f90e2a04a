"""FLYP (Goyal et al., 2023): fine-tune both towers with the CLIP contrastive loss on template captions."""

from __future__ import annotations

from ..losses import clip_loss
from .base import Method, register_method


@register_method
class Flyp(Method):
    key = "flyp"
    contrastive = True

    def setup(self) -> None:
        for p in self.model.parameters():
            p.requires_grad_(True)
        # CLIP's temperature stays frozen, as in R-Adapter's comparison
        if hasattr(self.model, "logit_scale"):
            self.model.logit_scale.requires_grad_(False)

    def loss(self, images, tokens, labels):
        return clip_loss(self.image_features(images), self.text_features(tokens), self.logit_scale)
