"""WiSE-FT (Wortsman et al., 2022): interpolate the zero-shot and the fine-tuned weights over an α grid.

The fine-tuned endpoint is ``ft`` trained in the same run, or the final checkpoint of an earlier ``ft`` run
(``method.wiseft.ft_model: RUN_DIR``), in which case nothing is trained. The head is interpolated too, between
the zero-shot head and the fine-tuned one. The deploy α (``eval.alpha``) is the one a deployment would use;
the sweep (``eval.alphas``) traces the curve.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

from ..tasks.base import Scorer
from ..training.checkpoint import load_final_method_state
from .base import Variant, register_method
from .ft import FineTune, interpolate_state


@register_method
class WiseFT(FineTune):
    key = "wiseft"

    def setup(self) -> None:
        super().setup()
        self.zero_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.zero_head = self.head.detach().clone()
        if self.cfg.method.wiseft.ft_model:
            self.load_state_dict(load_final_method_state(self.cfg.method.wiseft.ft_model, expected_method="ft"))
            self.trains = False

    def variants(self, alphas) -> Iterator[Variant]:
        tuned = {k: v.detach() for k, v in self.model.state_dict().items()}
        for alpha in alphas:
            alpha = float(alpha)
            model = copy.deepcopy(self.model)
            model.load_state_dict(interpolate_state(self.zero_state, tuned, alpha))
            head = (1 - alpha) * self.zero_head + alpha * self.head.detach()
            yield Variant(Scorer(model.eval(), head=head), alpha=alpha)
