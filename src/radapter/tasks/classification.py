"""Image classification under distribution shift (the paper's ImageNet protocol, WiSE-FT conventions).

Training pairs are (image, caption): the CSV's own caption where the data has one, otherwise one of the class's
prompt templates drawn with the item's seed; the group id of MPM-NCE is the class. Evaluation: top-1/top-5 on
every evaluation set, with the head of the scored variant (a fine-tuned linear head) or the zero-shot head
rebuilt from the variant's own text tower; ``avg_ood:top1`` is the mean over the sets marked OOD. Default α 0.5.
"""

from __future__ import annotations

import copy
import functools
import logging
import os
import random
from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import Dataset, Subset

from ..config import ConfigError, build_dataclass
from ..data import (
    CsvDataset,
    EvalSet,
    EvalSetConfig,
    ImageFolderDataset,
    build_eval_set,
    imagenet_classnames,
    imagenet_wnids,
    sample_k_shot,
    split_holdout,
)
from ..data.transforms import eval_transform, train_transform
from ..data.world import ZERO_SHOT_TEMPLATES, WorldDataset, downstream_benchmark
from ..evaluation.classify import evaluate_classifier, summarize_sets
from ..training.precision import autocast_dtype
from ..zeroshot import OPENAI_IMAGENET_TEMPLATES, SIMPLE_IMAGENET_TEMPLATES, build_zero_shot_head, fill_template
from .base import CAPTIONS, CLASS_HEAD, GROUPS, LABELS, Batch, Scorer, Task, build_entries, register_task

log = logging.getLogger("radapter")

DATA_KINDS = ("imagefolder", "csv", "world")


def load_templates(spec: str) -> list:
    """``openai`` (80 templates), ``simple``, ``world`` or a text file with one template per line."""
    if spec == "openai":
        return list(OPENAI_IMAGENET_TEMPLATES)
    if spec == "simple":
        return list(SIMPLE_IMAGENET_TEMPLATES)
    if spec == "world":
        return list(ZERO_SHOT_TEMPLATES)
    if not os.path.isfile(spec):
        raise ConfigError(f"data.templates: {spec!r} is not 'openai', 'simple', 'world' or a file")
    with open(spec, encoding="utf-8") as f:
        templates = [line.rstrip("\n") for line in f if line.strip()]
    bad = [t for t in templates if "{}" not in t and "{c}" not in t]
    if bad or not templates:
        raise ConfigError(f"{spec}: every template needs a '{{}}' for the class name (bad: {bad[:3]})")
    return templates


class ClassificationItems(Dataset):
    """The training view: the item for key ``(index, epoch, seed)`` is ``(image, label, caption)``.

    The augmentation runs under a private RNG seeded with the item's seed, and the caption is the sample's own
    (CSV) or a class template drawn from the same seed, so both are reproducible and independent of workers
    and resumption.
    """

    def __init__(self, base: Dataset, transform: Any, classnames: Sequence[str], templates: Sequence[Any]) -> None:
        self.base, self.transform = base, transform
        self.classnames, self.templates = list(classnames), list(templates)
        self.captions = _captions_of(base)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key):
        index, _epoch, seed = key
        image, label = self.base[index]
        if self.transform is not None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                image = self.transform(image)
        caption = self.captions[index] if self.captions is not None else None
        if not caption:
            template = self.templates[random.Random(seed).randrange(len(self.templates))]
            caption = fill_template(template, self.classnames[int(label)])
        return image, int(label), caption


def _captions_of(dataset: Dataset) -> list[str | None] | None:
    """Per-item captions of a (possibly sub-set) dataset that has them (the FLYP CSV), else None."""
    if isinstance(dataset, Subset):
        inner = _captions_of(dataset.dataset)
        return None if inner is None else [inner[i] for i in dataset.indices]
    return getattr(dataset, "captions", None)


def collate_classification(items: Sequence[tuple]) -> Batch:
    images, labels, captions = zip(*items)
    labels = torch.tensor(labels, dtype=torch.long)
    return Batch(images=torch.stack(images), labels=labels, groups=labels, texts=list(captions))


@functools.lru_cache(maxsize=1)
def _world_splits(seed: int, n_train: int, n_test: int, rho: float) -> dict:
    """The generated benchmark, kept for the next run in this process (``radapter demo`` trains a dozen
    runs on the same world; rendering it takes seconds each time). Read-only: datasets only index it."""
    return downstream_benchmark(seed, n_train=n_train, n_test=n_test, rho=rho)


def _imagenet_names() -> dict[str, str]:
    return dict(zip(imagenet_wnids(), imagenet_classnames()))


def _check_classnames_spec(spec: str | None) -> None:
    if spec not in (None, "imagenet") and not os.path.isfile(spec):
        raise ConfigError(f"data.classnames: {spec!r} is not 'imagenet' or a file")


def _read_name_list(spec: str) -> list[str]:
    with open(spec, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


@register_task
class ClassificationTask(Task):
    key = "classification"
    default_alpha = 0.5
    provides = frozenset({LABELS, CAPTIONS, GROUPS, CLASS_HEAD})
    metric = "top1"
    description = "image classification: top-1/top-5 on every eval set, avg OOD over the shifted sets"

    @classmethod
    def check_config(cls, cfg) -> None:
        if cfg.data.kind not in DATA_KINDS:
            raise ConfigError(f"data.kind: {cfg.data.kind!r} is not a classification source; expected {DATA_KINDS}")
        eval_set_configs(cfg.data.eval_sets)

    def setup(self) -> None:
        cfg = self.cfg.data
        size, mean, std = self.backbone.image_size, self.backbone.mean, self.backbone.std
        self.templates = load_templates(cfg.templates)
        self.skipped = None
        if cfg.kind == "world":
            train, self._classnames, self.eval_sets = self._world()
            tf_train = None
            eval_view = train
        elif self.eval_only and "classnames" in self.saved and not cfg.holdout_fraction:
            # a finished run: its class names were recorded, the training data is not read again (except for the
            # α hold-out, which is training data)
            train, self._classnames = None, list(self.saved["classnames"])
            self._folders = self.saved.get("class_folders")
            self.eval_sets = self._eval_sets()
            tf_train = eval_view = None
        else:
            if not cfg.train:
                raise ConfigError(
                    f"data.train: no training data given (an ImageFolder dir or a CSV file, kind {cfg.kind!r})"
                )
            _check_classnames_spec(cfg.classnames)
            if cfg.kind == "imagefolder":
                # class names are bound to folders by name: wnid → name for ImageNet, 'folder<TAB>name' files
                imagenet = cfg.classnames == "imagenet"
                train = ImageFolderDataset(
                    cfg.train,
                    transform=None,
                    classnames=_imagenet_names() if imagenet else None,
                    classnames_file=None if imagenet else cfg.classnames,
                )
            else:
                c = cfg.csv
                names = None
                if cfg.classnames == "imagenet":
                    names = list(imagenet_classnames())
                elif cfg.classnames:
                    names = _read_name_list(cfg.classnames)
                train = CsvDataset(
                    cfg.train,
                    transform=None,
                    img_key=c.img_key,
                    caption_key=c.caption_key,
                    label_key=c.label_key,
                    sep=c.sep,
                    classnames=names,
                )
                if train.classnames is None:
                    raise ConfigError(
                        f"{cfg.train}: the {c.label_key!r} column holds integer labels, so the class names must be "
                        "given: data.classnames: FILE (one name per line, line k = label k) or 'imagenet'"
                    )
            if cfg.skip_corrupt and not self.eval_only:
                self.skipped = train.skip_corrupt_images(progress=self.progress)
                log.warning("%s", self.skipped)
            self._classnames = list(train.classnames)
            self._folders = getattr(train, "class_folders", None)
            self.eval_sets = self._eval_sets()
            tf_train = train_transform(size, scale=tuple(cfg.train_scale), hflip=cfg.hflip, mean=mean, std=std)
            eval_view = copy.copy(train)
            eval_view.transform = self._eval_transform()
        self._train = self._subsets(train, eval_view) if train is not None else None
        self._tf_train = tf_train

    def _eval_transform(self):
        b = self.backbone
        return eval_transform(
            b.image_size,
            mean=b.mean,
            std=b.std,
            resize_mode=(b.info or {}).get("preprocess_cfg", {}).get("resize_mode"),
        )

    def _eval_sets(self) -> list[EvalSet]:
        tf_eval = self._eval_transform()
        configs = eval_set_configs(self.cfg.data.eval_sets)
        return [
            build_eval_set(s, self._classnames, tf_eval, progress=self.progress, head_folders=self._folders)
            for s in configs
        ]

    def _world(self) -> tuple[Dataset, list[str], list[EvalSet]]:
        w = self.cfg.data.world
        splits = _world_splits(w.seed, w.train, w.test, w.rho)
        train = WorldDataset(splits["train"])
        names = list(train.classes)
        sets = [
            EvalSet(name=name, dataset=WorldDataset(samples), classnames=names, ood=name.startswith("ood_"))
            for name, samples in splits.items()
            if name != "train"
        ]
        return train, names, sets

    def _subsets(self, train: Dataset, eval_view: Dataset) -> Dataset:
        """k-shot sampling and the α hold-out (both seeded), applied to the training set."""
        cfg = self.cfg.data
        targets = list(train.targets)
        indices = list(range(len(targets)))
        if cfg.shots:
            indices = sample_k_shot(targets, cfg.shots, self.seed)
        if cfg.holdout_fraction > 0:
            keep, held = split_holdout([targets[i] for i in indices], cfg.holdout_fraction, self.seed)
            held_idx = [indices[i] for i in held]
            indices = [indices[i] for i in keep]
            holdout = EvalSet(
                name="holdout", dataset=Subset(eval_view, held_idx), classnames=self._classnames, ood=False
            )
            self.eval_sets.insert(0, holdout)
        self._targets = [targets[i] for i in indices]
        return Subset(train, indices) if len(indices) != len(targets) else train

    # --- training ----------------------------------------------------------------------------------
    @property
    def classnames(self) -> list[str]:
        return self._classnames

    def train_size(self) -> int:
        return len(self._targets)

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
        cfg = self.cfg
        return evaluate_classifier(
            scorer.model,
            self.eval_sets,
            head=scorer.head_over(self._classnames, self.templates),
            tokenizer=self.backbone.tokenizer,
            classnames=self._classnames,
            templates=self.templates,
            device=self.device,
            batch_size=cfg.eval.batch_size,
            workers=cfg.data.workers,
            max_images=cfg.eval.max_images,
            seed=self.seed,
            progress=self.progress,
            autocast_dtype=autocast_dtype(cfg.optim.precision, self.device),
        )

    def summarize(self, results: dict[str, Any]) -> dict[str, Any]:
        return summarize_sets(results, self.eval_sets)

    def image_sets(self) -> dict[str, Any]:
        sets = {"train": self._train} if self._train is not None else {}
        return {**sets, **{es.name: es.dataset for es in self.eval_sets}}

    def record(self) -> dict[str, Any]:
        return {"classnames": self._classnames, "class_folders": getattr(self, "_folders", None)}

    def classifier(self, scorer: Scorer) -> dict[str, Any]:
        head = scorer.head_over(self._classnames, self.templates)
        if head is None:
            head = build_zero_shot_head(
                scorer.model, self.backbone.tokenizer, self._classnames, self.templates, device=self.device
            )
        templates = [t if isinstance(t, str) else t("{}") for t in self.templates]
        return {"classnames": self._classnames, "templates": templates, "head": head.detach().float().cpu()}

    def describe(self) -> dict[str, Any]:
        return {
            "n_train": self.train_size() if self._train is not None else None,
            "n_classes": len(self._classnames),
            "eval_sets": {es.name: len(es.dataset) for es in self.eval_sets},
        }


def eval_set_configs(entries: Sequence[Any]) -> list[EvalSetConfig]:
    """Validates ``data.eval_sets`` like every other key. With no entry marked ID (``ood: false``, or kind
    ``imagenet``), the first entry is the ID set: a lone test set is not "avg OOD"."""
    sets = build_entries(EvalSetConfig, entries, "data.eval_sets", build_dataclass)
    stated = [e.get("ood") if isinstance(e, dict) else None for e in entries]
    if sets and all(s.ood for s in sets) and stated[0] is None:
        sets[0].ood = False
    return sets
