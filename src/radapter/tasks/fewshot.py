"""The few-shot protocols of the prompt-learning literature (CoOp, CoCoOp, MaPLe) on the 11 CoOp datasets.

* ``base2new`` — generalisation from base to novel classes (CoCoOp, CVPR 2022, Table 1). K shots per class are
  drawn from the whole training split with the run's seed (Dassl's semantics, cached as JSON next to the run),
  *then* the classes are cut by sorted label: the first ⌈n/2⌉ are **base** (trained on), the rest **novel**
  (never seen). Two evaluation sets: ``base`` (base test images, a head over the base classes; the ID set) and
  ``novel`` (novel test images, a head over the novel classes; OOD). The headline number is their harmonic mean
  ``HM = 2·B·N / (B + N)`` (``HM:top1`` in the result rows; ``avg_ood:top1`` is N). The built-in world
  (``data.kind: world``) is a base-to-novel source too: its 10 classes, 5 base and 5 novel.
* ``cross_dataset`` — cross-dataset transfer (CoCoOp, Table 2): K shots of every class of the source (ImageNet in
  the literature); evaluation on the source's test set (ID) and on every target's test set with all its classes
  and its own template (OOD); ``avg_ood:top1`` is the average over the targets, source excluded. Without targets
  this is CoOp's plain few-shot protocol on one dataset.

One head per evaluation set, from the scored variant (:meth:`Scorer.head_over`): its fixed head when the set's
classes are the training classes (FT's fine-tuned linear head), its ``class_head`` for any class list (CoOp's
learned context with the set's class names), otherwise the zero-shot head of the set's classes and templates
built from the variant's own text tower (R-Adapter and LoRA at each α, zero-shot). FT's head only covers the
training classes, so FT scores novel classes and other datasets with the zero-shot head of its (untouched) text
tower against its fine-tuned image features.

Training pairs are (image, one of the source's templates filled with the class name, drawn with the item's seed)
with the class as the MPM-NCE group, exactly as in the classification task. Default deploy α 0.5.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch.utils.data import Dataset

from ..config import ConfigError
from ..data import DataError, EvalSet
from ..data.coop import (
    CoOpData,
    base_novel_labels,
    few_shot_cache_name,
    get_coop_dataset,
    load_coop_dataset,
    make_few_shot,
    resolve_templates,
    sample_per_class,
    split_dataset,
    subsample_classes,
    write_class_split,
)
from ..data.transforms import eval_transform, train_transform
from ..data.world import ZERO_SHOT_TEMPLATES, WorldDataset, WorldSamples, generate
from ..evaluation.classify import evaluate_classifier
from ..training.precision import autocast_dtype
from ..zeroshot import build_zero_shot_head
from .base import CAPTIONS, CLASS_HEAD, GROUPS, LABELS, Batch, Scorer, Task, register_task
from .classification import ClassificationItems, collate_classification

log = logging.getLogger("radapter")

LAYOUTS = ("coop", "authors")


def harmonic_mean(base: float, novel: float) -> float:
    """``2·B·N / (B + N)``, the base-to-novel headline number (0 when both are 0)."""
    return 0.0 if base + novel <= 0 else 2.0 * base * novel / (base + novel)


def _spec_name(name: str, where: str) -> str:
    try:
        return get_coop_dataset(name).name
    except KeyError as e:
        raise ConfigError(f"{where}: {e.args[0]}") from None


def templates_for(spec: str, dataset: str) -> list:
    """The templates ``spec`` names for ``dataset`` (a CoOp key or ``"world"``): ``coop`` is the dataset's own
    prompt (the world's five templates), ``imagenet80`` the 80 OpenAI ones, anything else a template file."""
    if dataset == "world" and spec == "coop":
        return list(ZERO_SHOT_TEMPLATES)
    try:
        return resolve_templates(spec, dataset)
    except ValueError as e:
        raise ConfigError(f"data.coop.templates: {e}") from None


#: The world's random stream for base-to-novel data (the library's own sets use streams 1–4).
_WORLD_STREAM = 101


@functools.lru_cache(maxsize=2)
def world_train_test(seed: int, n_train: int, n_test: int, rho: float) -> tuple[WorldSamples, WorldSamples]:
    """The world's training pool and its test set, both of the ID domain ("photo") with colour cue ``rho``; kept
    for the next run in this process (``radapter demo`` trains many runs on them). Read-only."""
    train = generate(None, n_train, [seed, _WORLD_STREAM, 0], ["photo"], rho)
    test = generate(None, n_test, [seed, _WORLD_STREAM, 1], ["photo"], rho)
    return train, test


class _Relabelled(Dataset):
    """Items ``indices`` of ``base`` with their labels mapped by ``mapping`` (a class half of the world)."""

    def __init__(self, base: Dataset, indices: Sequence[int], mapping: dict[int, int]) -> None:
        self.base, self.indices, self.mapping = base, list(indices), dict(mapping)
        self.targets = [self.mapping[int(base.targets[i])] for i in self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        image, label = self.base[self.indices[i]]
        return image, self.mapping[int(label)]


class FewShotTask(Task):
    """What ``base2new`` and ``cross_dataset`` share: the ``data.coop`` source, K-shot training pairs, one head
    per evaluation set. Subclasses build the sets (:meth:`_build_coop`, :meth:`_build_world`)."""

    provides = frozenset({LABELS, CAPTIONS, GROUPS, CLASS_HEAD})
    default_alpha = 0.5
    metric = "top1"
    kinds: ClassVar[tuple[str, ...]] = ("coop",)

    # --- configuration -----------------------------------------------------------------------------
    @classmethod
    def check_config(cls, cfg) -> None:
        d, c = cfg.data, cfg.data.coop
        if d.kind not in cls.kinds:
            raise ConfigError(
                f"data.kind: {d.kind!r} is not a {cls.key} source; expected {' | '.join(cls.kinds)} "
                "(data.kind: coop with data.coop.dataset / data.coop.root)"
            )
        if d.eval_sets:
            raise ConfigError(
                f"data.eval_sets: the {cls.key} task builds its own evaluation sets ({cls._sets_text()}); remove them"
            )
        if d.shots:
            raise ConfigError(f"data.shots is the classification task's K; the {cls.key} task reads data.coop.shots")
        if d.holdout_fraction:
            raise ConfigError(f"data.holdout_fraction: not supported by the {cls.key} task (set it to 0)")
        if c.shots is not None and (isinstance(c.shots, bool) or c.shots < 1):
            raise ConfigError(f"data.coop.shots: expected a positive integer or null, got {c.shots!r}")
        if c.layout not in LAYOUTS:
            raise ConfigError(f"data.coop.layout: expected {' | '.join(LAYOUTS)}, got {c.layout!r}")
        if d.kind == "coop":
            if not c.dataset:
                raise ConfigError(f"data.coop.dataset: the {cls.key} task needs a dataset (e.g. dtd, imagenet)")
            templates_for(c.templates, _spec_name(c.dataset, "data.coop.dataset"))
        else:
            templates_for(c.templates, "world")
        cls._check_targets(cfg)

    @classmethod
    def _check_targets(cls, cfg) -> None:
        if cfg.data.coop.targets:
            raise ConfigError(
                f"data.coop.targets: the {cls.key} task has no target datasets (they belong to cross_dataset)"
            )

    @classmethod
    def _sets_text(cls) -> str:
        return ""

    # --- set-up ------------------------------------------------------------------------------------
    def setup(self) -> None:
        b = self.backbone
        self._tf_eval = eval_transform(
            b.image_size,
            mean=b.mean,
            std=b.std,
            resize_mode=(b.info or {}).get("preprocess_cfg", {}).get("resize_mode"),
        )
        self._tf_train = None
        self.set_templates: dict[str, list] = {}
        self.eval_sets: list[EvalSet] = []
        self._train: Dataset | None = None
        c = self.cfg.data.coop
        self.shots = c.shots
        if self.cfg.data.kind == "world":
            self.dataset = "world"
            self._build_world()
        else:
            self.dataset = _spec_name(c.dataset, "data.coop.dataset")
            d = self.cfg.data
            self._tf_train = train_transform(
                b.image_size, scale=tuple(d.train_scale), hflip=d.hflip, mean=b.mean, std=b.std
            )
            self._build_coop()
        for es in self.eval_sets:
            log.info("%s: eval set %s: %d images, %d classes", self.key, es.name, len(es.dataset), len(es.classnames))

    def _load(self, name: str) -> CoOpData:
        c = self.cfg.data.coop
        data = load_coop_dataset(name, c.root, layout=c.layout, check_files=c.check_files)
        log.info("%s", data)
        return data

    def _few_shot(self, data: CoOpData) -> CoOpData:
        """The K-shot draw of ``data`` (all classes) with the run's seed, read from / written to its JSON cache."""
        c = self.cfg.data.coop
        if not c.shots or self.eval_only:
            return data  # evaluation reads test splits only
        cache = os.path.join(c.cache_dir or self.cfg.out, few_shot_cache_name(data.name, c.shots, self.seed))
        reused = os.path.isfile(cache)
        try:
            out = make_few_shot(data, c.shots, self.seed, cache_path=cache, repeat=c.repeat)
        except ValueError as e:
            raise DataError(str(e)) from e
        self.cache_path, self.cache_reused = cache, reused
        log.info(
            "%s: %d-shot draw (seed %d) %s %s",
            data.name,
            c.shots,
            self.seed,
            "read from" if reused else "written to",
            cache,
        )
        return out

    def _build_coop(self) -> None:
        raise NotImplementedError

    def _build_world(self) -> None:
        raise NotImplementedError

    def _add_set(self, name: str, dataset: Dataset, classnames: Sequence[str], templates: list, ood: bool) -> None:
        self.eval_sets.append(EvalSet(name=name, dataset=dataset, classnames=list(classnames), ood=ood))
        self.set_templates[name] = list(templates)

    # --- training ----------------------------------------------------------------------------------
    @property
    def classnames(self) -> list[str]:
        return self._classnames

    def train_size(self) -> int:
        return len(self._train)

    def train_dataset(self) -> Dataset:
        return ClassificationItems(self._train, self._tf_train, self._classnames, self.templates)

    def collate(self, items) -> Batch:
        return collate_classification(items)

    def zero_shot_head(self) -> torch.Tensor:
        if not hasattr(self, "_zs_head"):
            self._zs_head = build_zero_shot_head(
                self.backbone.model.eval(),
                self.backbone.tokenizer,
                self._classnames,
                self.templates,
                device=self.device,
            )
        return self._zs_head

    # --- evaluation --------------------------------------------------------------------------------
    def evaluate(self, scorer: Scorer) -> dict[str, Any]:
        """Top-1/top-5 on every set, each with its own head (module docstring)."""
        cfg = self.cfg
        results: dict[str, Any] = {}
        for es in self.eval_sets:
            templates = self.set_templates[es.name]
            results.update(
                evaluate_classifier(
                    scorer.model,
                    [es],
                    head=scorer.head_over(es.classnames, templates, training=self._classnames),
                    tokenizer=self.backbone.tokenizer,
                    classnames=es.classnames,
                    templates=templates,
                    device=self.device,
                    batch_size=cfg.eval.batch_size,
                    workers=cfg.data.workers,
                    max_images=cfg.eval.max_images,
                    seed=self.seed,
                    progress=self.progress,
                    autocast_dtype=autocast_dtype(cfg.optim.precision, self.device),
                )
            )
        return results

    def image_sets(self) -> dict[str, Any]:
        sets = {"train": self._train} if self._train is not None else {}
        return {**sets, **{es.name: es.dataset for es in self.eval_sets}}

    def record(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "shots": self.shots,
            "classnames": self._classnames,
            "eval_sets": {es.name: es.classnames for es in self.eval_sets},
            "few_shot_cache": getattr(self, "cache_path", None),
        }

    def classifier(self, scorer: Scorer) -> dict[str, Any]:
        """The training classes' head of the variant, exported beside a merged model."""
        head = scorer.head_over(self._classnames, self.templates)
        if head is None:
            head = build_zero_shot_head(
                scorer.model, self.backbone.tokenizer, self._classnames, self.templates, device=self.device
            )
        templates = [t if isinstance(t, str) else t("{}") for t in self.templates]
        return {"classnames": self._classnames, "templates": templates, "head": head.detach().float().cpu()}

    def describe(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "shots": self.shots,
            "n_train": len(self._train) if self._train is not None else None,
            "n_classes": len(self._classnames),
            "eval_sets": {es.name: len(es.dataset) for es in self.eval_sets},
        }


@register_task
class BaseToNovelTask(FewShotTask):
    key = "base2new"
    kinds = ("coop", "world")
    description = "base-to-novel: train on the base half of the classes; base / novel top-1 and their HM"

    @classmethod
    def _sets_text(cls) -> str:
        return "base, novel"

    def _build_coop(self) -> None:
        data = self._load(self.dataset)
        drawn = self._few_shot(data)
        base, novel = subsample_classes(drawn, "base"), subsample_classes(drawn, "novel")
        if not self.eval_only:
            self.class_files = write_class_split(self.cfg.out, data.classnames)
        self.templates = templates_for(self.cfg.data.coop.templates, self.dataset)
        self._classnames = list(base.classnames)
        self._train = None if self.eval_only else split_dataset(base, "train")
        self._add_set("base", split_dataset(base, "test", self._tf_eval), base.classnames, self.templates, ood=False)
        self._add_set("novel", split_dataset(novel, "test", self._tf_eval), novel.classnames, self.templates, ood=True)

    def _build_world(self) -> None:
        """The world's classes cut into halves; K shots per base class from its training domain; the base and
        novel test sets are the two halves of its ID test set (same domain, same colour-cue strength)."""
        w, c = self.cfg.data.world, self.cfg.data.coop
        train, test = (WorldDataset(s) for s in world_train_test(w.seed, w.train, w.test, w.rho))
        names = list(train.classes)
        base_labels, novel_labels = base_novel_labels(len(names))
        if not self.eval_only:
            self.class_files = write_class_split(self.cfg.out, names)
        self.templates = templates_for(c.templates, "world")
        to_base = {old: new for new, old in enumerate(base_labels)}
        to_novel = {old: new for new, old in enumerate(novel_labels)}
        drawn = sample_per_class(train.targets, c.shots, self.seed, repeat=c.repeat) if c.shots else range(len(train))
        self._classnames = [names[i] for i in base_labels]
        self._train = _Relabelled(train, [i for i in drawn if train.targets[i] in to_base], to_base)
        for name, mapping, ood in (("base", to_base, False), ("novel", to_novel, True)):
            keep = [i for i, t in enumerate(test.targets) if t in mapping]
            self._add_set(name, _Relabelled(test, keep, mapping), [names[o] for o in mapping], self.templates, ood)

    def summarize(self, results: dict[str, Any]) -> dict[str, Any]:
        base, novel = results["base:top1"], results["novel:top1"]
        return {
            "id_set": "base",
            "ood_sets": ["novel"],
            "avg_ood:top1": novel,
            "HM:top1": harmonic_mean(base, novel),
            "dataset": self.dataset,
            "shots": self.shots,
        }


@register_task
class CrossDatasetTask(FewShotTask):
    key = "cross_dataset"
    kinds = ("coop",)
    description = "cross-dataset: K shots of every source class; top-1 on the source and on each target dataset"

    @classmethod
    def _sets_text(cls) -> str:
        return "the source's test set and data.coop.targets"

    @classmethod
    def _check_targets(cls, cfg) -> None:
        c = cfg.data.coop
        source = _spec_name(c.dataset, "data.coop.dataset")
        seen: list[str] = []
        for i, target in enumerate(c.targets):
            name = _spec_name(target, f"data.coop.targets[{i}]")
            if name == source:
                raise ConfigError(
                    f"data.coop.targets[{i}]: {target!r} is the source dataset; it is evaluated as the ID set and "
                    "the average over targets excludes it"
                )
            if name in seen:
                raise ConfigError(f"data.coop.targets[{i}]: {target!r} is listed twice")
            seen.append(name)
            templates_for(c.templates, name)

    def _build_coop(self) -> None:
        data = self._load(self.dataset)
        drawn = self._few_shot(data)
        c = self.cfg.data.coop
        self.templates = templates_for(c.templates, self.dataset)
        self._classnames = list(data.classnames)
        self._train = None if self.eval_only else split_dataset(drawn, "train")
        self._add_set(self.dataset, split_dataset(data, "test", self._tf_eval), data.classnames, self.templates, False)
        self.targets = [_spec_name(t, "data.coop.targets") for t in c.targets]
        for name in self.targets:
            target = self._load(name)
            tf = self._tf_eval
            self._add_set(
                name, split_dataset(target, "test", tf), target.classnames, templates_for(c.templates, name), True
            )

    def summarize(self, results: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"id_set": self.dataset, "ood_sets": list(self.targets)}
        if self.targets:
            out["avg_ood:top1"] = sum(results[f"{t}:top1"] for t in self.targets) / len(self.targets)
        return {**out, "dataset": self.dataset, "shots": self.shots}
