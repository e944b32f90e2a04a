"""Open-vocabulary semantic segmentation with a CAT-Seg-style segmenter around the run's CLIP (deploy α 0.4).

The task wraps the run's (adapted) CLIP in a :class:`~radapter.segmentation.Segmenter` and owns its aggregation head
(a trainable module: it trains with every method that serves a task's own loss, is checkpointed as ``task.head.*``
and exported to ``OUT/segmenter/``). Training batches are crops with per-pixel labels; the loss is the segmenter's
per-pixel BCE over the training classes (CAT-Seg) or CE, with the class text features recomputed every step while
the text tower trains (cached when it cannot change). Data:

* ``data.kind: detectron2`` — images + label maps with the same file stem (0-based train ids, one ignore value;
  16-bit TIFF labels are read without truncation), CAT-Seg's training crops (``data.segmentation``);
* ``data.kind: world`` — the offline world's scenes (:mod:`radapter.data.world.scenes`): training on the seen classes
  of the photo domain, cut into the grid's cells (the world CLIP's native 32 px view); evaluation on every class,
  in the photo domain (``id``) and in the five held-out domains (``ood_<domain>``).

Evaluation, per eval set (``data.eval_sets`` entries, :class:`SegEvalSetConfig`), exactly as detectron2's
``SemSegEvaluator`` (:mod:`radapter.evaluation.segmentation`), predictions at ground-truth resolution, optionally by
sliding window: ``<set>:mIoU`` (the primary metric), ``<set>:fwIoU``, ``<set>:mAcc``, ``<set>:pAcc``,
``<set>:class_IoU`` (per class), ``<set>:miou_mode`` and, when a seen (training) vocabulary is given,
``<set>:seen_mIoU`` / ``<set>:unseen_mIoU`` / ``<set>:hIoU``. An ID set with unseen classes is also reported as the
two sets ``<set>_seen`` (the row's ID set: the training classes in the training distribution) and
``<set>_unseen``, so tables show them as columns. ``avg_ood:mIoU`` averages the OOD sets (other datasets / domains).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from ..config import ConfigError, build_dataclass
from ..data.errors import DataError
from ..data.segmentation import (
    LabelFileError,
    SegClassList,
    SegEvalTransform,
    SegTrainTransform,
    SemanticSegmentationDataset,
    collate_eval,
    load_class_list,
    split_synonyms,
)
from ..data.world import ZERO_SHOT_TEMPLATES
from ..data.world.scenes import SceneSpec, WorldSceneDataset, default_seen_classes, segmentation_benchmark
from ..evaluation.segmentation import MIOU_MODES, SegmentationResult, SemSegEvaluator
from ..segmentation import CATSEG_TEMPLATES, LOSSES, SegHeadConfig, Segmenter, SegmenterConfig
from ..segmentation.dense import RESIDUALS
from ..training.precision import autocast_dtype
from ..utils import atomic_save_safetensors, atomic_write_text
from ..zeroshot import OPENAI_IMAGENET_TEMPLATES, SIMPLE_IMAGENET_TEMPLATES
from .base import TASK_LOSS, Batch, Scorer, Task, build_entries, register_task

log = logging.getLogger("radapter")

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
def _world_benchmark(seed: int, n_train: int, n_test: int, seen: tuple[int, ...]) -> dict:
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
        raise ConfigError(f"{where}: {e}") from e
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


def _finite(v: float | None) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


@register_task
class SegmentationTask(Task):
    key = "segmentation"
    default_alpha = 0.4
    provides = frozenset({TASK_LOSS})
    metric = PRIMARY
    description = "open-vocabulary semantic segmentation (CAT-Seg-style): mIoU per eval set, seen/unseen classes"

    @classmethod
    def check_config(cls, cfg) -> None:
        if cfg.data.kind not in DATA_KINDS:
            raise ConfigError(
                f"data.kind: {cfg.data.kind!r} is not a segmentation source; expected one of {DATA_KINDS} "
                "(detectron2: image + label folders)"
            )
        s = cfg.data.segmentation
        segmenter_config(cfg, 255)
        if cfg.data.kind == "detectron2":
            class_list(s.classes, s.ignore_value, "data.segmentation.classes")
            if not cfg.data.eval_sets:
                raise ConfigError("data.eval_sets: segmentation needs at least one evaluation set (detectron2 layout)")
        for c in eval_set_configs(cfg.data.eval_sets):
            class_list(c.classes, c.ignore_value, f"eval set {c.name!r}: classes")

    # --- set-up ------------------------------------------------------------------------------------------
    def setup(self) -> None:
        cfg = self.cfg.data
        self.eval_sets: list[EvalData] = []
        self._train: TrainItems | None = None
        self.world = cfg.kind == "world"
        if self.world:
            self._setup_world()
        else:
            self._setup_detectron2()
        self.seg_config = segmenter_config(self.cfg, self.train_classes.ignore_value)
        self.segmenter: Segmenter | None = None
        if self.backbone.model is not None:  # `radapter data check` builds the data only
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)  # the same head for every method of a seed
                self.segmenter = Segmenter(self.backbone.model, self.backbone.tokenizer, self.seg_config)
        # CAT-Seg trains pretrained CLIP weights at 0.01× the head's rate (read by the qv / full methods)
        self.clip_lr_scale = float(cfg.segmentation.clip_lr_scale)

    def _path(self, p: str) -> str:
        p = os.path.expanduser(p)
        root = self.cfg.data.segmentation.root
        return p if os.path.isabs(p) or not root else os.path.join(os.path.expanduser(root), p)

    def _dataset(self, image_dir: str, label_dir: str, cl: SegClassList, transform, unpaired: bool, what: str):
        try:
            ds = SemanticSegmentationDataset.from_class_list(
                self._path(image_dir), self._path(label_dir), cl, transform=transform, allow_unpaired=unpaired
            )
        except (ValueError, FileNotFoundError) as e:
            raise DataError(f"{what}: {e}") from e
        orphans = [p for p in ds.unpaired if os.path.dirname(p) == os.path.normpath(ds.label_dir)]
        if orphans:
            raise DataError(f"{what}: {len(orphans)} label maps have no image, e.g. {orphans[0]}")
        if ds.unpaired:
            log.info("%s: %d images without a label map are not used", what, len(ds.unpaired))
        return ds

    def _setup_detectron2(self) -> None:
        s, b = self.cfg.data.segmentation, self.backbone
        self.train_classes = class_list(s.classes, s.ignore_value, "data.segmentation.classes")
        if not self.train_classes.identity:
            raise ConfigError(
                f"data.segmentation.classes: {s.classes!r} scores several prompts per class (VOC-20b); train on a "
                "list whose prompts are its classes"
            )
        if self.eval_only and "train_classes" in self.saved:
            self.train_prompts = list(self.saved["train_classes"])
        else:
            self.train_prompts = list(self.train_classes.prompts)
        if not self.eval_only:
            if not (s.image_dir and s.label_dir):
                raise ConfigError("data.segmentation.image_dir / label_dir: the training images and label maps")
            transform = SegTrainTransform(
                crop_size=s.crop_size,
                scale_range=tuple(s.scale_range),
                hflip=s.hflip,
                colour_jitter=s.colour_jitter,
                ignore_value=self.train_classes.ignore_value,
                mean=b.mean,
                std=b.std,
            )
            base = self._dataset(s.image_dir, s.label_dir, self.train_classes, transform, False, "training set")
            self._train = TrainItems(base, transform)
        for c in eval_set_configs(self.cfg.data.eval_sets):
            cl = class_list(c.classes, c.ignore_value, f"eval set {c.name!r}: classes")
            ds = self._dataset(
                c.image_dir, c.label_dir, cl, SegEvalTransform(b.mean, b.std), c.allow_unpaired, f"eval set {c.name!r}"
            )
            self.eval_sets.append(self._eval_data(c, ds, cl, [p for p, _ in ds.pairs]))

    def _eval_data(self, c: SegEvalSetConfig, ds: Dataset, cl: SegClassList, paths: list[str]) -> EvalData:
        s = self.cfg.data.segmentation
        seen = None
        if c.seen is not None:
            vocab = self.train_prompts if c.seen == "train" else c.seen
            if isinstance(vocab, str):
                vocab = list(class_list(vocab, None, f"eval set {c.name!r}: seen").classes)
            seen = seen_indices(cl, vocab)
            log.info("eval set %s: %d of %d classes seen in training", c.name, len(seen), cl.num_classes)
        options = {k: getattr(c, k) for k in ("sliding_window", "window", "overlap", "sliding_resize", "global_view")}
        options = {k: v for k, v in options.items() if v is not None}
        if options.get("sliding_resize") == 0:
            options["sliding_resize"] = None
        return EvalData(c.name, ds, cl, bool(c.ood), c.miou_mode or s.miou_mode, seen, options, paths)

    def _setup_world(self) -> None:
        w, s, b = self.cfg.data.world, self.cfg.data.segmentation, self.backbone
        spec = SceneSpec()
        names = list(spec.world.classes)
        if s.world_seen is None:
            seen = list(default_seen_classes(spec))
        else:
            unknown = [n for n in s.world_seen if n not in names]
            if unknown or not s.world_seen:
                raise ConfigError(f"data.segmentation.world_seen: {unknown or 'empty'}; world classes: {names}")
            seen = sorted(names.index(n) for n in s.world_seen)
        bench = _world_benchmark(w.seed, w.train, w.test, tuple(seen))
        self.train_classes = SegClassList.from_names([names[i] for i in seen], "world_seen", spec.ignore_index)
        self.train_prompts = list(self.train_classes.prompts)
        if not self.eval_only:
            x, y = WorldSceneDataset(bench["train"], vocabulary=seen, mean=b.mean, std=b.std).tensors()
            xc, yc = grid_cells(x, y, spec.cell)
            keep = (yc != spec.ignore_index).flatten(1).any(1)  # cells holding (part of) an object
            self._train = TrainItems(None, tensors=(xc[keep], yc[keep]))
        everything = SegClassList.from_names(names, "world", spec.ignore_index)
        for name, scenes in bench.items():
            if name == "train":
                continue
            c = SegEvalSetConfig(name, "", "", "world", ood=name.startswith("ood_"), seen="train")
            ds = WorldSceneDataset(scenes, mean=b.mean, std=b.std)
            self.eval_sets.append(self._eval_data(c, ds, everything, []))

    # --- training ----------------------------------------------------------------------------------------
    def trainable_modules(self) -> dict[str, torch.nn.Module]:
        return {"head": self.segmenter.head}

    def loss(self, model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        seg = self.segmenter if model is self.segmenter.clip else self._segmenter_for(model)
        return seg.loss(seg(batch.images, self.train_prompts), batch.extra["labels"])

    def _segmenter_for(self, model: torch.nn.Module) -> Segmenter:
        if getattr(self, "_other", (None, None))[0] is not model:
            self._other = (model, self.segmenter.with_clip(model))
        return self._other[1]

    def train_size(self) -> int:
        return len(self._train)

    def train_dataset(self) -> Dataset:
        return self._train

    def collate(self, items) -> Batch:
        return collate_crops(items)

    def export_modules(self, directory: str) -> dict[str, str]:
        """``OUT/segmenter/``: the head (safetensors) and ``segmenter.json`` (its config, the training vocabulary,
        the base model and which CLIP weights go with it), what ``radapter seg predict`` loads."""
        out = os.path.join(directory, SEGMENTER_DIR)
        atomic_save_safetensors(self.segmenter.head.state_dict(), os.path.join(out, HEAD_FILE))
        cfg = self.cfg
        meta = {
            "segmenter": self.seg_config.to_dict(),
            "train_classes": self.train_prompts,
            "model": {"name": cfg.model.name, "pretrained": cfg.model.pretrained},
            "method": cfg.method.name,
            "alpha": cfg.eval.alpha if cfg.eval.alpha is not None else self.default_alpha,
            "embed_dim": self.segmenter.info.embed_dim,
            "vision_width": self.segmenter.info.width,
        }
        atomic_write_text(os.path.join(out, CONFIG_FILE), json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
        return {"segmenter": out}

    # --- evaluation --------------------------------------------------------------------------------------
    def evaluate(self, scorer: Scorer) -> dict[str, Any]:
        seg = self.segmenter.with_clip(scorer.model).eval()
        out: dict[str, Any] = {}
        for es in self.eval_sets:
            r = self.evaluate_set(seg, es)
            out.update(self._set_fields(es, r))
        return out

    @torch.no_grad()
    def evaluate_set(self, seg: Segmenter, es: EvalData) -> SegmentationResult:
        """The metrics of one set for one segmenter (its confusion matrix over every labelled pixel)."""
        cfg = self.cfg
        seg.config = dataclasses.replace(seg.config, **es.segmenter)
        cl = es.classes
        evaluator = SemSegEvaluator(cl.num_classes, cl.ignore_value, cl.primary_names(), es.miou_mode, seen=es.seen)
        p2c = None if cl.identity else torch.tensor(cl.prompt_to_class, device=self.device)
        amp = autocast_dtype(cfg.optim.precision, self.device)
        data = es.dataset
        if cfg.eval.max_images and cfg.eval.max_images < len(data):
            pick = np.random.default_rng(self.seed).choice(len(data), cfg.eval.max_images, replace=False)
            data = Subset(data, sorted(pick.tolist()))
        bs = cfg.eval.batch_size
        loader = DataLoader(data, batch_size=bs, num_workers=cfg.data.workers, collate_fn=collate_eval)
        try:
            for images, labels in loader:
                images = [x.to(self.device) for x in images]
                with torch.autocast(self.device.type, dtype=amp, enabled=amp is not None):
                    if len({tuple(x.shape) for x in images}) == 1:
                        scores = list(seg.predict_batch(torch.stack(images), cl.prompts, batch_size=bs))
                    else:
                        scores = seg.predict(images, cl.prompts)
                # arg-max at ground-truth resolution (predict's output size), prompts mapped to their classes
                preds = [s.argmax(0) if p2c is None else p2c[s.argmax(0)] for s in scores]
                evaluator.update([p.cpu() for p in preds], labels)
        except LabelFileError as e:
            raise DataError(f"eval set {es.name!r}: {e}") from e
        result = evaluator.compute()
        if result.labelled_pixels == 0:
            raise DataError(f"eval set {es.name!r}: no labelled pixel in {len(data)} label maps (wrong ignore value?)")
        return result

    def _set_fields(self, es: EvalData, r: SegmentationResult) -> dict[str, Any]:
        n = es.name
        out: dict[str, Any] = {
            f"{n}:{PRIMARY}": _finite(r.miou),
            f"{n}:fwIoU": _finite(r.fwiou),
            f"{n}:mAcc": _finite(r.macc),
            f"{n}:pAcc": _finite(r.pacc),
            f"{n}:miou_mode": r.miou_mode,
            f"{n}:labelled_pixels": r.labelled_pixels,
            f"{n}:class_IoU": {c: _finite(v) for c, v in zip(r.class_names, r.iou)},
        }
        if es.seen is not None and 0 < len(es.seen) < es.classes.num_classes:
            seen, unseen, h = _finite(r.seen_miou), _finite(r.unseen_miou), _finite(r.harmonic_miou)
            out.update({f"{n}:seen_mIoU": seen, f"{n}:unseen_mIoU": unseen, f"{n}:hIoU": h})
            if not es.ood and seen is not None and unseen is not None:
                out.update({f"{n}_seen:{PRIMARY}": seen, f"{n}_unseen:{PRIMARY}": unseen})
        return out

    def summarize(self, results: dict[str, Any]) -> dict[str, Any]:
        ids = [es.name for es in self.eval_sets if not es.ood]
        ood = [es.name for es in self.eval_sets if es.ood]
        id_set = None
        if ids:
            id_set = f"{ids[0]}_seen" if f"{ids[0]}_seen:{PRIMARY}" in results else ids[0]
        modes = sorted({es.miou_mode for es in self.eval_sets})
        out: dict[str, Any] = {"id_set": id_set, "ood_sets": ood, "miou_mode": modes[0] if len(modes) == 1 else "mixed"}
        values = [results.get(f"{n}:{PRIMARY}") for n in ood]
        if ood and all(v is not None for v in values):
            out[f"avg_ood:{PRIMARY}"] = sum(values) / len(values)
        return out

    def image_sets(self) -> dict[str, Any]:
        if self.world:
            return {}  # generated in memory: nothing on disk to check
        sets = {} if self._train is None else {"train": [p for p, _ in self._train.base.pairs]}
        return {**sets, **{es.name: es.paths for es in self.eval_sets}}

    def record(self) -> dict[str, Any]:
        return {"train_classes": self.train_prompts, "class_list": self.train_classes.name}

    def describe(self) -> dict[str, Any]:
        return {
            "n_train": len(self._train) if self._train is not None else None,
            "n_classes": len(self.train_prompts),
            "eval_sets": {es.name: len(es.dataset) for es in self.eval_sets},
        }
