"""Open-vocabulary semantic segmentation with CLIP: a CAT-Seg-style segmenter in plain PyTorch (library).

* :mod:`~radapter.segmentation.dense` — dense CLIP image features at any size (value-path last block);
* :mod:`~radapter.segmentation.text` — class text features (templates, synonyms, cache);
* :mod:`~radapter.segmentation.head` — the class-agnostic cost-aggregation head;
* :mod:`~radapter.segmentation.segmenter` — :class:`Segmenter`, sliding-window inference;
* :mod:`~radapter.segmentation.losses` — per-pixel BCE / CE;
* :mod:`~radapter.segmentation.finetune` — frozen / Q-V attention / full fine-tuning of the CLIP.
"""

from .dense import DenseFeatures, dense_features, interpolate_pos_embed, vision_info
from .finetune import STRATEGIES, TrainableSelection, select_clip_trainable
from .head import SegHead, SegHeadConfig
from .losses import LOSSES, segmentation_loss
from .segmenter import Segmenter, SegmenterConfig, sliding_window_scores
from .text import CATSEG_TEMPLATES, TextFeatureBank, class_text_features

__all__ = [
    "CATSEG_TEMPLATES",
    "LOSSES",
    "STRATEGIES",
    "DenseFeatures",
    "SegHead",
    "SegHeadConfig",
    "Segmenter",
    "SegmenterConfig",
    "TextFeatureBank",
    "TrainableSelection",
    "class_text_features",
    "dense_features",
    "interpolate_pos_embed",
    "segmentation_loss",
    "select_clip_trainable",
    "sliding_window_scores",
    "vision_info",
]
