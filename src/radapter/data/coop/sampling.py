"""K-shot subsets of a CoOp dataset with Dassl's semantics, seeded, and cached as JSON next to the run.

CoOp draws its few-shot training set with Dassl's ``DatasetBase.generate_fewshot_dataset`` (Dassl.pytorch,
``dassl/data/datasets/base_dataset.py``): per class, ``random.sample(items, K)`` when the class has at least
K items; otherwise all of its items (CoOp calls it without ``repeat``; with ``repeat=True`` Dassl draws K with
replacement instead). The val split gets ``min(K, 4)`` shots per class; ImageNet's val is its test set and is
not subsampled. CoOp caches the draw as ``split_fewshot/shot_{K}-seed_{seed}.pkl`` inside the dataset folder.

Here (deviations on purpose):

* every class draws from its own NumPy stream seeded with ``(seed, split, label)``, so the draw does not depend
  on Python's global RNG state, on the order of the items' classes, or on what else the process did before —
  CoOp's draw depends on all of these, so its exact subsets cannot be re-drawn anyway;
* the cache is JSON (never a pickle) at a path the caller chooses (next to the run), holds the drawn items
  themselves (``[path, label, classname]``, as a split file), and is checked against the dataset, K, seed and
  ``repeat`` before it is reused;
* sampling refuses data already cut to base or novel classes: few-shot sampling comes first, so a base-only run
  trains on exactly the images of the all-class run with the same seed (see :mod:`radapter.data.coop.splits`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from radapter.data.coop.base import CoOpData, Datum, labels_of
from radapter.data.coop.registry import get_coop_dataset
from radapter.utils import atomic_write_text

__all__ = [
    "CACHE_FORMAT",
    "DEFAULT_SEEDS",
    "MAX_VAL_SHOTS",
    "few_shot_cache_name",
    "make_few_shot",
    "sample_per_class",
]

#: Seeds the few-shot literature reports (CoOp's ``scripts/coop/main.sh`` loops over them).
DEFAULT_SEEDS: tuple[int, ...] = (1, 2, 3)
#: The val split gets ``min(K, MAX_VAL_SHOTS)`` shots per class, as in CoOp's dataset classes.
MAX_VAL_SHOTS = 4
#: Version tag of the cache file.
CACHE_FORMAT = "radapter.coop.fewshot/1"

# One random stream per split, so the val draw is independent of the train draw with the same seed.
_STREAMS = {"train": 0, "val": 1}


def sample_per_class(labels: Sequence[int], k: int, seed: int, *, repeat: bool = False, stream: int = 0) -> list[int]:
    """Draws ``k`` items of every class (Dassl's ``generate_fewshot_dataset`` for one list).

    A class with at least ``k`` items gets ``k`` distinct ones (drawn without replacement); a class with fewer
    gets all of them, or with ``repeat=True`` ``k`` drawn with replacement.

    Args:
        labels: Label of each item.
        k: Shots per class, ``k >= 1``.
        seed: Non-negative seed; class ``c`` draws from ``numpy.random.default_rng([seed, stream, c])``.
        repeat: Fill short classes up to ``k`` by drawing with replacement.
        stream: Separates independent draws made with the same seed (train 0, val 1).

    Returns:
        Indices into ``labels``: classes in ascending label order, each class's indices in drawn order.
    """
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise ValueError(f"shots must be a positive integer, got {k!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    by_class: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        by_class.setdefault(int(label), []).append(index)
    chosen: list[int] = []
    for label in sorted(by_class):
        members = by_class[label]
        rng = np.random.default_rng([int(seed), int(stream), label])
        if len(members) >= k:
            picks = rng.choice(len(members), size=int(k), replace=False)
        elif repeat:
            picks = rng.choice(len(members), size=int(k), replace=True)
        else:
            picks = range(len(members))
        chosen.extend(members[int(i)] for i in picks)
    return chosen


def few_shot_cache_name(dataset: str, shots: int, seed: int) -> str:
    """A file name for the cache of one draw, e.g. ``fewshot_dtd_16shot_seed1.json``."""
    return f"fewshot_{dataset}_{shots}shot_seed{seed}.json"


def _val_shots(data: CoOpData, shots: int) -> int | None:
    return None if get_coop_dataset(data.name).val_is_test else min(shots, MAX_VAL_SHOTS)


def _draw(data: CoOpData, shots: int, seed: int, repeat: bool) -> dict[str, list[Datum]]:
    out = {"train": [data.train[i] for i in sample_per_class(labels_of(data.train), shots, seed, repeat=repeat)]}
    val_shots = _val_shots(data, shots)
    if val_shots is not None:
        picks = sample_per_class(labels_of(data.val), val_shots, seed, repeat=repeat, stream=_STREAMS["val"])
        out["val"] = [data.val[i] for i in picks]
    return out


def _header(data: CoOpData, shots: int, seed: int, repeat: bool) -> dict[str, Any]:
    return {
        "format": CACHE_FORMAT,
        "dataset": data.name,
        "shots": int(shots),
        "seed": int(seed),
        "repeat": bool(repeat),
        "val_shots": _val_shots(data, shots),
    }


def _read_cache(path: str, data: CoOpData, expected: dict[str, Any]) -> dict[str, list[Datum]]:
    try:
        with open(path, encoding="utf-8") as f:
            cached = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: few-shot cache is not valid JSON ({e}); delete it to draw again") from e
    if not isinstance(cached, dict):
        raise ValueError(f"{path}: few-shot cache must be a JSON object")
    for key, value in expected.items():
        if cached.get(key) != value:
            raise ValueError(
                f"{path}: few-shot cache was drawn with {key}={cached.get(key)!r}, this run asks for {key}={value!r} "
                "(give each run its own cache path, or delete the file to draw again)"
            )
    out: dict[str, list[Datum]] = {}
    for split in ("train", "val") if expected["val_shots"] is not None else ("train",):
        known = {(item.path, item.label): item for item in data.split(split)}
        items = []
        for index, entry in enumerate(cached.get(split) or []):
            try:
                rel, label, name = entry
                item = known[(rel, label)]
            except (TypeError, ValueError, KeyError):
                raise ValueError(
                    f"{path}: {split}[{index}] = {entry!r:.80} is not an item of {data.name}'s {split} split "
                    f"({data.source}); the cache is stale, delete it to draw again"
                ) from None
            if item.classname != name:
                raise ValueError(f"{path}: {split}[{index}] names class {name!r}, the dataset {item.classname!r}")
            items.append(item)
        if not items:
            raise ValueError(f"{path}: few-shot cache has no {split!r} items")
        out[split] = items
    return out


def _dump(payload: dict[str, Any]) -> str:
    """JSON with one item per line: readable in a diff, and still one ``json.load`` away."""
    parts = []
    for key, value in payload.items():
        if isinstance(value, list):
            body = ",\n  ".join(json.dumps(entry) for entry in value)
            parts.append(f"{json.dumps(key)}: [\n  {body}\n ]" if value else f"{json.dumps(key)}: []")
        else:
            parts.append(f"{json.dumps(key)}: {json.dumps(value)}")
    return "{\n " + ",\n ".join(parts) + "\n}\n"


def make_few_shot(
    data: CoOpData, shots: int, seed: int, *, cache_path: str | os.PathLike | None = None, repeat: bool = False
) -> CoOpData:
    """The K-shot version of a dataset: ``K`` train and ``min(K, 4)`` val images per class; test unchanged.

    Args:
        data: All classes of a dataset, as loaded (not yet cut to base or novel classes).
        shots: K, shots per class.
        seed: Seed of the draw (the literature reports seeds 1, 2 and 3: :data:`DEFAULT_SEEDS`).
        cache_path: JSON file for the drawn items: read and checked when it exists, written otherwise.
        repeat: Fill classes with fewer than K images by drawing with replacement (Dassl's ``repeat``; CoOp
            leaves it off and takes all images of such classes).

    Returns:
        A copy of ``data`` with the drawn train (and val) items; ``info["few_shot"]`` records the draw.

    Raises:
        ValueError: Bad K or seed; data already cut to a class subset; a cache drawn for another dataset, K,
            seed or ``repeat``, or one listing items the dataset does not have.
    """
    if "classes" in data.info:
        raise ValueError(
            f"{data.name}: few-shot sampling must come before the base/novel split (data is already cut to "
            f"{data.info['classes']!r} classes); sample the full dataset, then call subsample_classes"
        )
    if "few_shot" in data.info:
        raise ValueError(f"{data.name}: data is already a few-shot subset ({data.info['few_shot']})")
    header = _header(data, shots, seed, repeat)
    cache_path = os.fspath(cache_path) if cache_path is not None else None
    if cache_path is not None and os.path.exists(cache_path):
        drawn = _read_cache(cache_path, data, header)
    else:
        drawn = _draw(data, shots, seed, repeat)
        if cache_path is not None:
            payload = dict(header, source=data.source)
            payload["counts"] = {split: len(data.split(split)) for split in ("train", "val", "test")}
            payload.update({split: [list(item) for item in items] for split, items in drawn.items()})
            atomic_write_text(cache_path, _dump(payload))
    out = data.with_splits(**drawn)
    out.info["few_shot"] = {k: header[k] for k in ("shots", "seed", "val_shots", "repeat")}
    return out
