"""Base-to-novel class splits, as CoOp / CoCoOp define them (``OxfordPets.subsample_classes`` in CoOp's code).

With ``n`` classes and labels sorted ascending, the first ``m = ⌈n/2⌉`` labels are the *base* classes and the
remaining ``n − m`` the *novel* ones. Each half is relabelled from 0 (base label ``i`` is original label ``i``;
novel label ``j`` is original label ``m + j``) and the same cut is applied to train, val and test alike. A model
is trained on the base half and evaluated on base test images with a base-class head and on novel test images
with a novel-class head; the harmonic mean of the two accuracies is the headline number.

The labels are those of the split files (CoOp's order, which is not always alphabetical: OxfordPets and
Flowers102 keep their datasets' own class ids). The R-Adapter authors' code cuts classes in torchvision
ImageFolder's alphabetical order instead; :func:`~radapter.data.coop.readers.read_authors_layout` reproduces
that order when their layout is read.

Few-shot sampling comes first (:func:`~radapter.data.coop.sampling.make_few_shot`), then the cut, so a
base-only run trains on the base-class images of the all-class run with the same seed.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence

from radapter.data.coop.base import SPLITS, CoOpData
from radapter.utils import atomic_write_text

__all__ = ["CLASS_SUBSETS", "base_novel_labels", "subsample_classes", "write_class_split"]

#: Accepted values of ``which``; ``"new"`` is CoOp's spelling of ``"novel"``.
CLASS_SUBSETS = ("all", "base", "novel")


def base_novel_labels(n_classes: int) -> tuple[list[int], list[int]]:
    """``(base, novel)`` original labels: the first ``⌈n/2⌉`` labels and the rest.

    >>> base_novel_labels(5)
    ([0, 1, 2], [3, 4])
    """
    if n_classes < 2:
        raise ValueError(f"a base/novel split needs at least 2 classes, got {n_classes}")
    m = math.ceil(n_classes / 2)
    return list(range(m)), list(range(m, n_classes))


def _canonical(which: str) -> str:
    which = "novel" if which == "new" else which
    if which not in CLASS_SUBSETS:
        raise ValueError(f"class subset must be one of {', '.join(CLASS_SUBSETS)} (or 'new'), got {which!r}")
    return which


def subsample_classes(data: CoOpData, which: str) -> CoOpData:
    """Keeps the base or novel classes of every split and relabels them from 0.

    Args:
        data: A dataset with all its classes (few-shot sampled or not).
        which: ``"all"`` (returned unchanged), ``"base"`` or ``"novel"`` (``"new"`` accepted).

    Returns:
        A copy with the kept items relabelled, ``classnames`` of the kept classes in new-label order, and
        ``info["classes"] = which`` plus ``info["original_labels"]`` (original label of each new label).
    """
    which = _canonical(which)
    if which == "all":
        return data
    if "classes" in data.info:
        raise ValueError(f"{data.name}: data is already cut to {data.info['classes']!r} classes")
    base, novel = base_novel_labels(len(data.classnames))
    kept = base if which == "base" else novel
    new_label = {old: new for new, old in enumerate(kept)}
    splits = {
        split: [item._replace(label=new_label[item.label]) for item in data.split(split) if item.label in new_label]
        for split in SPLITS
    }
    out = data.with_splits(**splits, classnames=[data.classnames[old] for old in kept])
    out.info["classes"] = which
    out.info["original_labels"] = list(kept)
    return out


def write_class_split(directory: str | os.PathLike, classnames: Sequence[str]) -> dict[str, str]:
    """Writes which classes are base and which novel, for the run folder.

    Files: ``base_classes.txt`` and ``novel_classes.txt`` (one class name per line, line ``i`` = label ``i`` of
    that half) and ``class_split.json`` (``{"base"|"novel": [{"label", "original_label", "name"}, ...]}``).

    Args:
        directory: Run folder (created if needed).
        classnames: Names of all classes, indexed by original label.

    Returns:
        ``{"base": path, "novel": path, "json": path}``.
    """
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    halves = dict(zip(("base", "novel"), base_novel_labels(len(classnames))))
    paths = {}
    for half, labels in halves.items():
        paths[half] = os.path.join(directory, f"{half}_classes.txt")
        atomic_write_text(paths[half], "".join(f"{classnames[old]}\n" for old in labels))
    table = {
        half: [{"label": new, "original_label": old, "name": classnames[old]} for new, old in enumerate(labels)]
        for half, labels in halves.items()
    }
    paths["json"] = os.path.join(directory, "class_split.json")
    atomic_write_text(paths["json"], json.dumps(table, indent=1) + "\n")
    return paths
