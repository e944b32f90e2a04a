"""R-Adapter (Kim et al., ECCV 2024): adapters + dropping + EMA + re-scaling + MPM-NCE, each switchable.

Ablations are configuration: ``method.adapter.drop_prob: 0`` (no dropping), ``method.use_ema: false`` or
``method.adapter.ema_momentum: 0`` (no EMA), ``eval.alphas: [1.0]`` (no re-scaling), ``method.loss: clip``
(FLYP's loss instead of MPM-NCE), ``method.label_smoothing: 0`` (no smoothing), ``method.adapter.rank: 64``
(low rank), ``method.adapter.towers: image``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import torch

from ..adapters import apply_r_adapter, ema_update, iter_alpha_merges, merge_r_adapter
from ..adapters.io import export_merged, save_adapter
from ..adapters.r_adapter import adapter_state_dict, iter_adapters
from ..config import ConfigError
from ..losses import clip_loss, head_cross_entropy, mpm_nce_loss
from .base import Method, Variant, register_method

LOSSES = ("mpm_nce", "clip", "ce")


def contrastive_loss(method: Method, images, tokens, labels) -> torch.Tensor:
    """The loss named by ``method.loss`` for methods that train both towers on (image, caption) pairs."""
    m = method.cfg.method
    f = method.image_features(images)
    if m.loss == "ce":
        return head_cross_entropy(
            f, method.task.zero_shot_head.to(f.dtype), labels, method.logit_scale, m.label_smoothing
        )
    g = method.text_features(tokens)
    if m.loss == "clip":
        return clip_loss(f, g, method.logit_scale)
    return mpm_nce_loss(f, g, labels, method.logit_scale, m.margin, m.label_smoothing)


def check_loss(method: Method) -> None:
    m = method.cfg.method
    if m.loss not in LOSSES:
        raise ConfigError(f"method.loss: unknown loss {m.loss!r}; expected one of {LOSSES}")
    method.contrastive = m.loss != "ce"


@register_method
class RAdapterMethod(Method):
    key = "radapter"
    contrastive = True

    def setup(self) -> None:
        check_loss(self)
        acfg = self.cfg.method.adapter
        if self.cfg.method.loss == "ce" and acfg.towers != "image":
            raise ConfigError(
                "method.loss: 'ce' trains against the fixed zero-shot head, so text-tower adapters "
                "would get no gradient; set method.adapter.towers: image"
            )
        apply_r_adapter(self.model, acfg)

    def loss(self, images, tokens, labels):
        return contrastive_loss(self, images, tokens, labels)

    def after_step(self, step: int) -> None:
        ema_update(self.model)

    def state_dict(self):
        return {f"adapter.{k}": v for k, v in adapter_state_dict(self.model).items()}

    @torch.no_grad()
    def load_state_dict(self, state):
        adapters = dict(iter_adapters(self.model))
        for key, value in state.items():
            _, site_and_name = key.split(".", 1)
            site, name = site_and_name.rsplit(".", 1)
            if site not in adapters:
                raise KeyError(f"checkpoint adapter site {site!r} not in this model")
            getattr(adapters[site], name).copy_(value)

    def variants(self) -> Iterator[Variant]:
        # one merged copy re-weighted per α: the sweep pays the s̃F̃W products once
        for alpha, merged in iter_alpha_merges(self.model, self.cfg.eval.alphas, use_ema=self.cfg.method.use_ema):
            yield Variant(merged.eval(), alpha=alpha)

    def export(self, directory: str) -> dict[str, str]:
        adapter_dir = os.path.join(directory, "adapter")
        merged_dir = os.path.join(directory, "merged")
        save_adapter(self.model, adapter_dir)
        alpha = self.cfg.method.adapter.alpha
        export_merged(merge_r_adapter(self.model, alpha=alpha, use_ema=self.cfg.method.use_ema), merged_dir)
        return {"adapter": adapter_dir, "merged": merged_dir}
