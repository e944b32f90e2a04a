"""Building a run's training set and evaluation sets from its :class:`~radapter.config.DataConfig`."""

from __future__ import annotations

import functools
import os
import random
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Dataset, Subset

from ..config import ConfigError, DataConfig
from ..zeroshot import OPENAI_IMAGENET_TEMPLATES, SIMPLE_IMAGENET_TEMPLATES


@dataclass
class RunData:
    train: Dataset | None  # yields (image, label); its transform is applied by TrainItems
    train_transform: Any
    targets: list[int]
    classnames: list[str]
    templates: list
    eval_sets: list  # radapter.data.EvalSet
    skipped: Any = None


def load_templates(spec: str) -> list:
    if spec == "openai":
        return list(OPENAI_IMAGENET_TEMPLATES)
    if spec == "simple":
        return list(SIMPLE_IMAGENET_TEMPLATES)
    if spec == "world":
        from ..data.world import ZERO_SHOT_TEMPLATES

        return list(ZERO_SHOT_TEMPLATES)
    if not os.path.isfile(spec):
        raise ConfigError(f"data.templates: {spec!r} is not 'openai', 'simple', 'world' or a file")
    with open(spec, encoding="utf-8") as f:
        templates = [line.rstrip("\n") for line in f if line.strip()]
    bad = [t for t in templates if "{}" not in t and "{c}" not in t]
    if bad or not templates:
        raise ConfigError(f"{spec}: every template needs a '{{}}' for the class name (bad: {bad[:3]})")
    return templates


class TrainItems(Dataset):
    """Wraps a dataset for the :class:`~radapter.training.sampler.StepSampler`.

    Items are ``(image, label, template_index)``. The augmentation runs under a private RNG seeded from the
    item's seed, and the caption template is drawn from the same seed, so both are reproducible and
    independent of workers and resumption.
    """

    def __init__(self, base: Dataset, transform: Any, n_templates: int) -> None:
        self.base, self.transform, self.n_templates = base, transform, n_templates

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key):
        index, _epoch, seed = key
        image, label = self.base[index]
        if self.transform is not None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                image = self.transform(image)
        return image, int(label), random.Random(seed).randrange(self.n_templates)


@functools.lru_cache(maxsize=1)
def _world_splits(seed: int, n_train: int, n_test: int, rho: float) -> dict:
    """The generated benchmark, kept for the next run in this process (``radapter demo`` trains a dozen
    runs on the same world; rendering it takes seconds each time). Read-only: datasets only index it."""
    from ..data.world import downstream_benchmark

    return downstream_benchmark(seed, n_train=n_train, n_test=n_test, rho=rho)


def _world_data(cfg: DataConfig, eval_only: bool) -> RunData:
    from ..data import EvalSet
    from ..data.world import WorldDataset

    splits = _world_splits(cfg.world_seed, cfg.world_train, cfg.world_test, cfg.world_rho)
    train = WorldDataset(splits["train"])
    classnames = list(train.classes)
    sets = []
    for name, samples in splits.items():
        if name == "train":
            continue
        sets.append(
            EvalSet(name=name, dataset=WorldDataset(samples), classnames=classnames, ood=name.startswith("ood_"))
        )
    return RunData(None if eval_only else train, None, train.targets, classnames, load_templates(cfg.templates), sets)


def build_run_data(
    cfg: DataConfig, image_size: int, mean, std, seed: int, eval_only: bool = False, progress: bool = True
) -> RunData:
    """Training set (k-shot / minus the α hold-out when asked) and evaluation sets, with CLIP transforms."""
    from ..data import CsvDataset, EvalSet, EvalSetConfig, ImageFolderDataset, build_eval_set
    from ..data.fewshot import sample_k_shot, split_holdout
    from ..data.transforms import eval_transform, train_transform

    if cfg.kind == "world":
        data = _world_data(cfg, eval_only)
    else:
        if not cfg.train:
            raise ConfigError("data.train: no training data given (an ImageFolder dir, a CSV file or 'world')")
        classnames = None
        if cfg.classnames == "imagenet":  # wnid folders -> OpenAI class names
            from ..data import imagenet_classnames, imagenet_wnids

            classnames = dict(zip(imagenet_wnids(), imagenet_classnames()))
        elif cfg.classnames:
            with open(cfg.classnames, encoding="utf-8") as f:
                classnames = [line.strip() for line in f if line.strip()]
        if cfg.kind == "imagefolder":
            train = ImageFolderDataset(cfg.train, transform=None, classnames=classnames)
        elif cfg.kind == "csv":
            train = CsvDataset(
                cfg.train,
                transform=None,
                img_key=cfg.csv_img_key,
                caption_key=cfg.csv_caption_key,
                label_key=cfg.csv_label_key,
                sep=cfg.csv_sep,
                classnames=classnames,
            )
        else:
            raise ConfigError(f"data.kind: unknown kind {cfg.kind!r}; expected imagefolder, csv or world")
        skipped = train.skip_corrupt_images(progress=progress) if cfg.skip_corrupt and not eval_only else None
        tf_eval = eval_transform(image_size, mean=mean, std=std)
        sets = [build_eval_set(EvalSetConfig(**s), train.classnames, tf_eval) for s in cfg.eval_sets]
        tf_train = train_transform(image_size, scale=tuple(cfg.train_scale), hflip=cfg.hflip, mean=mean, std=std)
        data = RunData(
            train, tf_train, list(train.targets), list(train.classnames), load_templates(cfg.templates), sets, skipped
        )
    indices = list(range(len(data.targets)))
    if cfg.shots:
        indices = sample_k_shot(data.targets, cfg.shots, seed)
    if cfg.holdout_fraction > 0:
        sub = [data.targets[i] for i in indices]
        keep, held = split_holdout(sub, cfg.holdout_fraction, seed)
        held_idx = [indices[i] for i in held]
        indices = [indices[i] for i in keep]
        base = data.train if data.train is not None else None
        if base is not None:
            held_ds = _with_eval_transform(base, image_size, mean, std, cfg.kind)
            data.eval_sets.insert(
                0, EvalSet(name="holdout", dataset=Subset(held_ds, held_idx), classnames=data.classnames, ood=False)
            )
    if data.train is not None and len(indices) != len(data.targets):
        data.train = Subset(data.train, indices)
        data.targets = [data.targets[i] for i in indices]
    return data


def _with_eval_transform(base, image_size, mean, std, kind):
    """A second view of the training files with the evaluation transform (for the α hold-out)."""
    import copy

    from ..data.transforms import eval_transform

    view = copy.copy(base)
    if kind != "world":
        view.transform = eval_transform(image_size, mean=mean, std=std)
    return view
