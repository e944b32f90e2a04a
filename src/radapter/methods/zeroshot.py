"""Zero-shot CLIP: no training; the task scores the base model with heads from its own text tower."""

from __future__ import annotations

from .base import Method, register_method


@register_method
class ZeroShot(Method):
    key = "zeroshot"
    trains = False

    def setup(self) -> None:
        for p in self.model.parameters():
            p.requires_grad_(False)

    def trainable_count(self) -> int:
        return 0
