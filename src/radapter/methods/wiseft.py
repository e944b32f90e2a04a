"""WiSE-FT (Wortsman et al., 2022): interpolate the zero-shot and the fine-tuned weights over an α grid.

The fine-tuned endpoint is a method of its own, ``method.wiseft.of``: ``ft`` (image tower + linear head, the
WiSE-FT paper's classifier — its head is interpolated too, between the zero-shot head and the fine-tuned one),
``lpft``, or ``flyp`` (both towers, contrastive: what retrieval fine-tunes). It is trained in the same run, or
read from the final checkpoint of an earlier run of that method (``method.wiseft.ft_model: RUN_DIR``), in which
case nothing is trained. The deploy α (``eval.alpha``) is the one a deployment would use; the sweep
(``eval.alphas``) traces the curve.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

from ..config import ConfigError
from ..tasks.base import Scorer
from ..training.checkpoint import load_final_method_state
from .base import Method, Variant, get_method, register_method
from .ft import interpolate_state

SOURCES = ("ft", "lpft", "flyp")


def _source(cfg) -> type[Method]:
    of = cfg.method.wiseft.of
    if of not in SOURCES:
        raise ConfigError(
            f"method.wiseft.of: {of!r} is not a fine-tuning method WiSE-FT interpolates; expected {SOURCES}"
        )
    return get_method(of)


@register_method
class WiseFT(Method):
    key = "wiseft"

    @classmethod
    def required(cls, cfg):
        return _source(cfg).required(cfg)

    def setup(self) -> None:
        self.zero_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        # the fine-tuning method itself sets up what trains (and its head), on the same model
        self.source = _source(self.cfg)(self.cfg, self.backbone, self.task, self.alpha)
        head = getattr(self.source, "head", None)
        self.zero_head = None if head is None else head.detach().clone()
        if self.cfg.method.wiseft.ft_model:
            state = load_final_method_state(self.cfg.method.wiseft.ft_model, expected_method=self.source.key)
            self.source.load_state_dict(state)
            self.trains = False

    # training is the source method's
    def extra_parameters(self):
        return self.source.extra_parameters()

    def param_groups(self):
        return self.source.param_groups()

    def group_starts(self, total_steps):
        return self.source.group_starts(total_steps)

    def loss(self, batch):
        return self.source.loss(batch)

    def method_state_dict(self):
        return self.source.method_state_dict()

    def load_method_state_dict(self, state):
        self.source.load_method_state_dict(state)

    def trainable_count(self) -> int:
        return self.source.trainable_count()

    def variants(self, alphas) -> Iterator[Variant]:
        tuned = {k: v.detach() for k, v in self.model.state_dict().items()}
        head = getattr(self.source, "head", None)
        for alpha in alphas:
            alpha = float(alpha)
            model = copy.deepcopy(self.model)
            model.load_state_dict(interpolate_state(self.zero_state, tuned, alpha))
            mixed = None if head is None else (1 - alpha) * self.zero_head + alpha * head.detach()
            yield Variant(Scorer(model.eval(), head=mixed), alpha=alpha)
