"""R-Adapter (Kim et al., ECCV 2024): adapters + dropping + EMA + re-scaling + MPM-NCE, each switchable.

Ablations are configuration: ``method.radapter.drop_prob: 0`` (no dropping), ``method.radapter.use_ema: false``
or ``method.radapter.ema_momentum: 0`` (no EMA), ``eval.alphas: [1.0]`` (no re-scaling),
``method.radapter.loss: clip`` (FLYP's loss instead of MPM-NCE), ``method.radapter.label_smoothing: 0``,
``method.radapter.rank: 64`` (low rank), ``method.radapter.towers: image``. The deploy α — the one the
exported merged model has — is ``eval.alpha`` (default: the task's).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import torch

from ..adapters import apply_r_adapter, ema_update, iter_alpha_merges, merge_r_adapter
from ..adapters.io import export_merged, save_adapter
from ..adapters.r_adapter import adapter_state_dict, iter_adapters
from ..config import ConfigError
from ..tasks.base import Scorer
from .base import Method, Variant, register_method
from .objectives import PairLossMethod


@register_method
class RAdapterMethod(PairLossMethod, Method):
    key = "radapter"
    serves_task_loss = True  # with a task's own loss (segmentation) the adapters train on it

    @classmethod
    def check(cls, cfg, task) -> None:
        super().check(cfg, task)
        c = cfg.method.radapter
        if c.loss == "ce" and c.towers != "image":
            raise ConfigError(
                "method.radapter.loss: 'ce' trains against the fixed zero-shot head, so text-tower adapters "
                "would get no gradient; set method.radapter.towers: image"
            )

    def setup(self) -> None:
        apply_r_adapter(self.model, self.cfg.method.radapter.adapter_config(self.alpha))

    @property
    def use_ema(self) -> bool:
        return self.cfg.method.radapter.use_ema

    def after_step(self, step: int) -> None:
        ema_update(self.model)

    def method_state_dict(self):
        return {f"adapter.{k}": v for k, v in adapter_state_dict(self.model).items()}

    @torch.no_grad()
    def load_method_state_dict(self, state):
        adapters = dict(iter_adapters(self.model))
        for key, value in state.items():
            _, site_and_name = key.split(".", 1)
            site, name = site_and_name.rsplit(".", 1)
            if site not in adapters:
                raise KeyError(f"checkpoint adapter site {site!r} not in this model")
            getattr(adapters[site], name).copy_(value)

    def variants(self, alphas) -> Iterator[Variant]:
        # one merged copy re-weighted per α: the sweep pays the s̃F̃W products once
        for alpha, merged in iter_alpha_merges(self.model, alphas, use_ema=self.use_ema):
            yield Variant(Scorer(merged.eval()), alpha=alpha)

    def merged(self, alpha: float | None = None):
        """The plain model at ``alpha`` (default: the deploy α), from the EMA unless ``use_ema`` is off."""
        return merge_r_adapter(self.model, alpha=self.alpha if alpha is None else alpha, use_ema=self.use_ema)

    def export(self, directory: str, alpha: float) -> dict[str, str]:
        adapter_dir = os.path.join(directory, "adapter")
        merged_dir = os.path.join(directory, "merged")
        save_adapter(self.model, adapter_dir, extra={"use_ema": self.use_ema})
        export_merged(self.merged(alpha), merged_dir)
        return {"adapter": adapter_dir, "merged": merged_dir}

    def record(self):
        return {"use_ema": self.use_ema}
