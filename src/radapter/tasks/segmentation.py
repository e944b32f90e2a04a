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
import json
import logging
import os
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from ..config import ConfigError
from ..data.errors import DataError
from ..data.segmentation import (
    LabelFileError,
    SegClassList,
    SegEvalTransform,
    SegTrainTransform,
    SemanticSegmentationDataset,
    collate_eval,
)
from ..data.world.scenes import SceneSpec, WorldSceneDataset, default_seen_classes
from ..evaluation.segmentation import SegmentationResult, SemSegEvaluator
from ..segmentation import Segmenter
from ..training.precision import autocast_dtype
from ..utils import atomic_save_safetensors, atomic_write_text
from .base import TASK_LOSS, Batch, Scorer, Task, register_task
from .segmentation_data import (
    CONFIG_FILE,
    DATA_KINDS,
    HEAD_FILE,
    PRIMARY,
    SEGMENTER_DIR,
    EvalData,
    SegEvalSetConfig,
    TrainItems,
    class_list,
    collate_crops,
    eval_set_configs,
    finite,
    grid_cells,
    seen_indices,
    segmenter_config,
    world_benchmark,
)

log = logging.getLogger("radapter")


def _scene_tensors(data: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """All images and labels of a :class:`WorldSceneDataset` (or a subset of one) at once."""
    if isinstance(data, Subset):
        x, y = data.dataset.tensors()
        return x[data.indices], y[data.indices]
    return data.tensors()


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
        if cfg.data.kind == "world" and cfg.data.eval_sets:
            raise ConfigError(
                "data.eval_sets: the world's evaluation scenes are generated (id, ood_<domain>); give none"
            )
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
        mode = c.miou_mode or s.miou_mode
        return EvalData(c.name, ds, cl, bool(c.ood), mode, seen, options, paths=paths, pooling_size=c.pooling_size)

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
        bench = world_benchmark(w.seed, w.train, w.test, tuple(seen))
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
        blocks = list(seg.head.classwise)
        trained = [b.pool for b in blocks]
        if es.pooling_size is not None:  # average pooling has no weights: the same head at another pooling
            for b in blocks:
                b.pool = int(es.pooling_size)
        try:
            return self._evaluate_set(seg, es)
        finally:
            for b, pool in zip(blocks, trained):
                b.pool = pool

    def _evaluate_set(self, seg: Segmenter, es: EvalData) -> SegmentationResult:
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
        cell = self._scored_by_cell(es, seg)
        if cell:
            # world scenes, sliding windows that tile the canvas: score the cells holding an object, in batches
            # (a cell without one is all ignore: what is predicted there counts for nothing)
            x, y = _scene_tensors(data)
            xc, yc = grid_cells(x, y, cell)
            keep = (yc != cl.ignore_value).flatten(1).any(1)
            xc, yc = xc[keep], yc[keep]
            for i in range(0, len(xc), bs):
                with torch.autocast(self.device.type, dtype=amp, enabled=amp is not None):
                    scores = seg.scores(xc[i : i + bs].to(self.device), cl.prompts)
                evaluator.update(list(scores.argmax(1).cpu()), list(yc[i : i + bs]))
            return self._checked(evaluator.compute(), es, len(data))
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
        return self._checked(evaluator.compute(), es, len(data))

    @staticmethod
    def _checked(result: SegmentationResult, es: EvalData, n: int) -> SegmentationResult:
        if result.labelled_pixels == 0:
            raise DataError(f"eval set {es.name!r}: no labelled pixel in {n} label maps (wrong ignore value?)")
        return result

    def _scored_by_cell(self, es: EvalData, seg: Segmenter) -> int | None:
        """The cell side when a world set's sliding windows are exactly its grid cells (window = cell, no overlap, no
        global view, no resize, the CLIP at the window's size): scoring the cells is then the same computation."""
        if not self.world:
            return None
        c, cell = seg.config, SceneSpec().cell
        tiles = c.sliding_window and (c.window or c.input_size) == cell and int(cell * (1 - c.overlap)) == cell
        plain = not c.global_view and c.sliding_resize is None and c.input_size in (None, cell)
        return cell if tiles and plain else None

    def _set_fields(self, es: EvalData, r: SegmentationResult) -> dict[str, Any]:
        n = es.name
        out: dict[str, Any] = {
            f"{n}:{PRIMARY}": finite(r.miou),
            f"{n}:fwIoU": finite(r.fwiou),
            f"{n}:mAcc": finite(r.macc),
            f"{n}:pAcc": finite(r.pacc),
            f"{n}:miou_mode": r.miou_mode,
            f"{n}:labelled_pixels": r.labelled_pixels,
            f"{n}:class_IoU": {c: finite(v) for c, v in zip(r.class_names, r.iou)},
        }
        if es.seen is not None and 0 < len(es.seen) < es.classes.num_classes:
            seen, unseen, h = finite(r.seen_miou), finite(r.unseen_miou), finite(r.harmonic_miou)
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
