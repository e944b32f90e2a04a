"""Prompt learning for CLIP-like text towers: learnable context in place of prompt words.

* :mod:`~radapter.prompting.coop` — CoOp (Zhou et al., IJCV 2022), :class:`CoOpPromptLearner`.
"""

from .coop import COOP_CONFIG_NAME, COOP_WEIGHTS_NAME, DEFAULT_N_CTX, CoOpPromptLearner

__all__ = ["COOP_CONFIG_NAME", "COOP_WEIGHTS_NAME", "DEFAULT_N_CTX", "CoOpPromptLearner"]
