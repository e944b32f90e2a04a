"""CoOp, context optimisation (Zhou et al., *Learning to Prompt for Vision-Language Models*, IJCV 2022), as a
baseline of the few-shot protocols.

M learnable context vectors ``v`` replace the prompt words of every class (generic context, class token at the
end; :class:`~radapter.prompting.coop.CoOpPromptLearner`). With ``t_c(v)`` the normalised text feature of class
c's prompt and ``f(x)`` the normalised image feature, the loss is the cross-entropy of
``softmax_c(s · ⟨f(x), t_c(v)⟩)`` over the task's training classes (s = CLIP's frozen logit scale); only ``v``
trains, both towers stay frozen. Evaluation scores every set's classes — novel classes and other datasets
included — with the learned context and their own names (:attr:`Scorer.class_head`); templates are not used.

Needs class labels and a class list (classification, base2new, cross_dataset). The context is checkpointed like
any trainable tensor and exported as ``coop/`` (``coop_context.safetensors`` + ``coop_config.json``), which
:meth:`CoOpPromptLearner.load` rebuilds on the same base model.

Deviation from CoOp's recipe: the trainer is radapter's one loop (AdamW, linear warm-up, cosine), not SGD with
momentum and a constant-lr warm-up epoch. Adam's step is invariant to the gradient's scale, so the lr does not
carry over from SGD: the presets use AdamW lr 2e-3 (see ``docs/fewshot.md``). Class-specific context (CSC) and
the front / middle class-token positions are not offered.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import torch

from ..config import ConfigError
from ..losses import head_cross_entropy
from ..prompting.coop import CoOpPromptLearner
from ..tasks.base import CLASS_HEAD, LABELS, Scorer
from .base import Method, Variant, register_method


@register_method
class CoOp(Method):
    key = "coop"
    needs = frozenset({LABELS, CLASS_HEAD})

    def setup(self) -> None:
        c = self.cfg.method.coop
        try:
            self.learner = CoOpPromptLearner(
                self.model, self.backbone.tokenizer, n_ctx=c.n_ctx, init=c.init, seed=self.cfg.seed, freeze_model=True
            )
            self.classnames = list(self.task.classnames)
            self.learner.tokens(self.classnames)  # checks (and caches) the prompts: long names fail now
        except ValueError as e:  # a context that does not fit this text tower, a bad n_ctx, too long names
            raise ConfigError(f"method.coop (n_ctx={c.n_ctx!r}, init={c.init!r}): {e}") from e

    def extra_parameters(self) -> dict[str, torch.nn.Parameter]:
        return {"ctx": self.learner.ctx}

    def loss(self, batch) -> torch.Tensor:
        f = self.image_features(batch.images)
        t = self.learner.class_features(self.classnames)  # [C, D], one text-tower pass over every class
        return head_cross_entropy(
            f, t.to(f.dtype), batch.labels, self.logit_scale, self.cfg.method.coop.label_smoothing
        )

    @torch.no_grad()
    def class_head(self, classnames: Sequence[str], templates: Sequence = ()) -> torch.Tensor:
        """[C, D] normalised text features of ``classnames`` with the learned context (``templates`` unused)."""
        self.model.eval()
        return self.learner.class_features(list(classnames)).float()

    def variants(self, alphas) -> Iterator[Variant]:
        yield Variant(Scorer(self.model, class_head=self.class_head))

    def export(self, directory: str, alpha: float) -> dict[str, str]:
        # reported as the method's "adapter" (its size is the adapter_bytes of the rows)
        path = os.path.join(directory, "coop")
        self.learner.save(path)
        return {"adapter": path}

    def record(self) -> dict:
        return {"n_ctx": self.learner.n_ctx, "ctx_init": self.learner.init}
