"""The segmentation task's configuration and data helpers: eval-set entries, class lists and vocabularies, the
segmenter's config from ``data.segmentation``, training items, the world's grid cells and CAT-Seg's dataset layouts.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..config import ConfigError, build_dataclass
from ..data.segmentation import SegClassList, SemanticSegmentationDataset, load_class_list, split_synonyms
from ..data.world import ZERO_SHOT_TEMPLATES
from ..data.world.scenes import segmentation_benchmark
from ..evaluation.segmentation import MIOU_MODES
from ..segmentation import CATSEG_TEMPLATES, LOSSES, SegHeadConfig, SegmenterConfig
from ..segmentation.dense import RESIDUALS
from ..zeroshot import OPENAI_IMAGENET_TEMPLATES, SIMPLE_IMAGENET_TEMPLATES
from .base import Batch, build_entries

DATA_KINDS = ("detectron2", "world")
PRIMARY = "mIoU"
SEGMENTER_DIR = "segmenter"
HEAD_FILE = "head.safetensors"
CONFIG_FILE = "segmenter.json"

# CAT-Seg's prepared layouts under detectron2's dataset root (its datasets/README and register_*.py): class list ->
# (image dir, label dir, whether the image dir also holds unlabelled images).
KNOWN_LAYOUTS: dict[str, tuple[str, str, bool]] = {
    "coco_stuff171": ("coco-stuff/images/val2017", "coco-stuff/annotations_detectron2/val2017", False),
    "ade150": (
        "ADEChallengeData2016/images/validation",
        "ADEChallengeData2016/annotations_detectron2/validation",
        False,
    ),
    "ade847": (
        "ADE20K_2021_17_01/images_detectron2/validation",
        "ADE20K_2021_17_01/annotations_detectron2/validation",
        False,
    ),
    "pc59": ("VOCdevkit/VOC2010/JPEGImages", "VOCdevkit/VOC2010/annotations_detectron2/pc59_val", True),
    "pc459": ("VOCdevkit/VOC2010/JPEGImages", "VOCdevkit/VOC2010/annotations_detectron2/pc459_val", True),
    "voc20": ("VOCdevkit/VOC2012/JPEGImages", "VOCdevkit/VOC2012/annotations_detectron2/val", True),
    "voc20b": ("VOCdevkit/VOC2012/JPEGImages", "VOCdevkit/VOC2012/annotations_detectron2_bg/val", True),
}


@dataclass
class SegEvalSetConfig:
    """One segmentation evaluation set (a ``data.eval_sets`` entry) in detectron2's layout."""

    name: str = field(metadata={"help": "name in results and tables (keys '<name>:mIoU', …)"})
    image_dir: str = field(metadata={"help": "folder of the images (relative: under data.segmentation.root)"})
    label_dir: str = field(metadata={"help": "folder of the label maps, same file stems"})
    classes: str = field(metadata={"help": "class list: a shipped name (ade150, …) or a .txt/.json file"})
    ignore_value: int | None = field(default=None, metadata={"help": "ignore value (default: the class list's)"})
    miou_mode: str | None = field(default=None, metadata={"help": "present | predicted (default data.segmentation's)"})
    seen: str | list[str] | None = field(
        default=None,
        metadata={"help": "seen vocabulary for seen/unseen mIoU: 'train' (the run's classes), a class list or names"},
    )
    ood: bool | None = field(default=None, metadata={"help": "counts in avg OOD (default: all but the first set)"})
    sliding_window: bool | None = field(default=None, metadata={"help": "default: data.segmentation.sliding_window"})
    window: int | None = field(default=None, metadata={"help": "sliding window side (default data.segmentation's)"})
    overlap: float | None = field(
        default=None, metadata={"help": "sliding window overlap (default data.segmentation's)"}
    )
    sliding_resize: int | None = field(default=None, metadata={"help": "resize before sliding (0: none)"})
    global_view: bool | None = field(default=None, metadata={"help": "average with a whole-image pass"})
    pooling_size: int | None = field(
        default=None, metadata={"help": "class-attention pooling of the head here (CAT-Seg evaluates with 1)"}
    )
    allow_unpaired: bool = field(
        default=False, metadata={"help": "images without a label map are skipped (VOC's JPEGImages holds all images)"}
    )

    def __post_init__(self) -> None:
        if self.miou_mode is not None and self.miou_mode not in MIOU_MODES:
            raise ConfigError(f"eval set {self.name!r}: miou_mode {self.miou_mode!r} is not one of {MIOU_MODES}")
        if self.overlap is not None and not 0.0 <= self.overlap < 1.0:
            raise ConfigError(f"eval set {self.name!r}: overlap must be in [0, 1), got {self.overlap}")


@dataclass
class EvalData:
    """A resolved evaluation set: its images and labels, class list, options."""

    name: str
    dataset: Dataset
    classes: SegClassList
    ood: bool
    miou_mode: str
    seen: list[int] | None
    segmenter: dict[str, Any]  # SegmenterConfig fields of this set (sliding window, …)
    pooling_size: int | None = None  # the head's class-attention pooling while this set is scored
    paths: list[str] = field(default_factory=list)


class TrainItems(Dataset):
    """Training view for keys ``(index, epoch, seed)``: a detectron2-layout crop drawn with the item's seed, or a
    fixed (world cell) tensor pair."""

    def __init__(self, base: SemanticSegmentationDataset | None, transform=None, tensors=None) -> None:
        self.base, self.transform, self.tensors = base, transform, tensors

    def __len__(self) -> int:
        return len(self.tensors[0]) if self.tensors is not None else len(self.base)

    def __getitem__(self, key):
        index, _epoch, seed = key
        if self.tensors is not None:
            return self.tensors[0][index], self.tensors[1][index]
        image, label = self.base.read(index)
        return self.transform(image, label, np.random.default_rng(seed))


def collate_crops(items: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> Batch:
    images, labels = zip(*items)
    return Batch(images=torch.stack(images), extra={"labels": torch.stack(labels)})


def grid_cells(x: torch.Tensor, y: torch.Tensor, cell: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[N, 3, H, W], [N, H, W] -> every aligned cell crop [N·g², 3, c, c], [N·g², c, c] (row-major)."""
    n, _, h, w = x.shape
    gh, gw = h // cell, w // cell
    xc = x.reshape(n, 3, gh, cell, gw, cell).permute(0, 2, 4, 1, 3, 5).reshape(-1, 3, cell, cell)
    yc = y.reshape(n, gh, cell, gw, cell).permute(0, 1, 3, 2, 4).reshape(-1, cell, cell)
    return xc, yc


@functools.lru_cache(maxsize=1)
def world_benchmark(seed: int, n_train: int, n_test: int, seen: tuple[int, ...]) -> dict:
    """The world scenes, kept for the next run in this process (the demo trains several rows on them)."""
    return segmentation_benchmark(seed, n_train=n_train, n_test=n_test, seen=seen)


def segmentation_templates(spec: str) -> tuple[str, ...]:
    """``catseg`` (CAT-Seg's single template), ``world``, ``openai`` (80), ``simple`` or a file (one per line)."""
    named = {"catseg": CATSEG_TEMPLATES, "world": ZERO_SHOT_TEMPLATES}
    named.update(openai=OPENAI_IMAGENET_TEMPLATES, simple=SIMPLE_IMAGENET_TEMPLATES)
    if spec in named:
        return tuple(t if isinstance(t, str) else t("{}") for t in named[spec])
    if not os.path.isfile(spec):
        raise ConfigError(f"data.segmentation.templates: {spec!r} is not catseg, world, openai, simple or a file")
    with open(spec, encoding="utf-8") as f:
        templates = tuple(line.rstrip("\n") for line in f if line.strip())
    bad = [t for t in templates if "{}" not in t]
    if bad or not templates:
        raise ConfigError(f"{spec}: every template needs '{{}}' for the class name (bad: {bad[:3]})")
    return templates


def class_list(spec: str, ignore_value: int | None, where: str) -> SegClassList:
    """A class list by name or file, with an ignore value override; errors name ``where``."""
    try:
        cl = load_class_list(spec)
        if ignore_value is not None and ignore_value != cl.ignore_value:
            cl = dataclasses.replace(cl, ignore_value=int(ignore_value))
    except (KeyError, ValueError, FileNotFoundError) as e:
        raise ConfigError(f"{where}: {e.args[0] if isinstance(e, KeyError) else e}") from e
    return cl


def _norm(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.lower())


def seen_indices(classes: SegClassList, vocabulary: Sequence[str]) -> list[int]:
    """Classes of ``classes`` that are in ``vocabulary``: a class is seen when one of its synonyms equals one of a
    vocabulary name's synonyms, compared in lower case without spaces or punctuation ("dining table" = "diningtable")."""
    known = {_norm(s) for name in vocabulary for s in split_synonyms(name)}
    return [i for i, c in enumerate(classes.classes) if any(_norm(s) in known for s in split_synonyms(c))]


def head_config(overrides: dict) -> SegHeadConfig:
    valid = [f.name for f in dataclasses.fields(SegHeadConfig)]
    unknown = [k for k in overrides if k not in valid]
    if unknown:
        raise ConfigError(f"data.segmentation.head: unknown keys {unknown}; valid: {valid}")
    try:
        return SegHeadConfig(**overrides)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"data.segmentation.head: {e}") from e


def segmenter_config(cfg, ignore_index: int) -> SegmenterConfig:
    """The :class:`SegmenterConfig` of ``data.segmentation`` (validated; errors name the key)."""
    s = cfg.data.segmentation
    checks = (
        ("loss", s.loss, LOSSES),
        ("synonyms", s.synonyms, ("mean", "first")),
        ("miou_mode", s.miou_mode, MIOU_MODES),
        ("dense_residual", s.dense_residual, RESIDUALS),
    )
    for key, value, allowed in checks:
        if value not in allowed:
            raise ConfigError(f"data.segmentation.{key}: {value!r} is not one of {allowed}")
    if s.guidance_layers is not None and len(s.guidance_layers) != 2:
        raise ConfigError(f"data.segmentation.guidance_layers: two block indices, got {s.guidance_layers}")
    if s.clip_lr_scale < 0:
        raise ConfigError(f"data.segmentation.clip_lr_scale: must be ≥ 0, got {s.clip_lr_scale}")
    try:
        return SegmenterConfig(
            head=head_config(s.head),
            templates=segmentation_templates(s.templates),
            synonyms=s.synonyms,
            input_size=s.input_size,
            guidance_layers=None if s.guidance_layers is None else tuple(s.guidance_layers),
            dense_residual=s.dense_residual,
            loss=s.loss,
            ignore_index=int(ignore_index),
            sliding_window=s.sliding_window,
            window=s.window,
            overlap=s.overlap,
            sliding_resize=s.sliding_resize,
            global_view=s.global_view,
        )
    except ValueError as e:
        raise ConfigError(f"data.segmentation: {e}") from e


def eval_set_configs(entries: Sequence[Any]) -> list[SegEvalSetConfig]:
    """Validates ``data.eval_sets``; with no entry marked, the first is the ID set and the others OOD."""
    sets = build_entries(SegEvalSetConfig, entries, "data.eval_sets", build_dataclass)
    for i, s in enumerate(sets):
        if s.ood is None:
            s.ood = i > 0
    return sets


def finite(v: float | None) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)
