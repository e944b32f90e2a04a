"""FLYP (Goyal et al., 2023): fine-tune both towers with the CLIP contrastive loss on (image, caption) pairs."""

from __future__ import annotations

from ..losses import clip_loss
from ..tasks.base import CAPTIONS
from .base import Method, register_method


@register_method
class Flyp(Method):
    key = "flyp"
    needs = frozenset({CAPTIONS})

    def setup(self) -> None:
        for p in self.model.parameters():
            p.requires_grad_(True)
        # CLIP's temperature stays frozen, as in R-Adapter's comparison
        if hasattr(self.model, "logit_scale"):
            self.model.logit_scale.requires_grad_(False)

    def loss(self, batch):
        return clip_loss(self.image_features(batch.images), self.text_features(batch.texts), self.logit_scale)
