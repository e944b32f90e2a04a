"""What a CoOp dataset is once read: three lists of ``(path, label, classname)`` and the class names.

The shape is that of CoOp's ``split_zhou_*.json`` (``[relative path, label, classname]`` triples), kept
relative to an image root so that a cached few-shot draw stays valid when the data moves.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from radapter.data.base import DatasetLayoutError, preview
from radapter.data.coop.registry import PublishedCounts

__all__ = ["SPLITS", "CoOpData", "Datum", "classnames_from_items", "labels_of", "prompt_name"]

#: Split names, in CoOp's order.
SPLITS: tuple[str, ...] = ("train", "val", "test")


class Datum(NamedTuple):
    """One image of a split.

    Attributes:
        path: Path relative to :attr:`CoOpData.image_root`, ``/``-separated (as in ``split_zhou_*.json``).
        label: Class index, ``0 <= label < len(classnames)``.
        classname: The class name as the split source spells it (may contain ``_``).
    """

    path: str
    label: int
    classname: str


def prompt_name(classname: str) -> str:
    """The class name given to prompts: ``_`` becomes a space, as in CoOp's trainers."""
    return classname.replace("_", " ")


def classnames_from_items(
    splits: dict[str, Sequence[Datum]], source: str | os.PathLike, n_classes: int | None = None
) -> list[str]:
    """Class name of each label, from the items of all splits (CoOp takes them from the data, not a list).

    Args:
        splits: Items by split name.
        source: File or folder the items came from (named in errors).
        n_classes: Expected number of labels; default the largest label + 1.

    Returns:
        Prompt-ready names (``_`` -> space), indexed by label.

    Raises:
        DatasetLayoutError: A label with two different names, or labels that are not ``0 .. n-1``.
    """
    names: dict[int, str] = {}
    for split, items in splits.items():
        for index, item in enumerate(items):
            known = names.setdefault(item.label, item.classname)
            if known != item.classname:
                raise DatasetLayoutError(
                    source,
                    f"label {item.label} is named both {known!r} and {item.classname!r} "
                    f"(split {split!r}, entry {index}: {item.path})",
                )
    if not names:
        raise DatasetLayoutError(source, "lists no images")
    n = max(names) + 1 if n_classes is None else n_classes
    missing = [label for label in range(n) if label not in names]
    extra = [label for label in names if not 0 <= label < n]
    if missing or extra:
        raise DatasetLayoutError(
            source,
            f"labels must be 0 .. {n - 1} with every label used; missing {preview(missing)}"
            + (f", out of range {preview(sorted(extra))}" if extra else ""),
        )
    return [prompt_name(names[label]) for label in range(n)]


@dataclass
class CoOpData:
    """A CoOp dataset: train / val / test items and the class names of their labels.

    Attributes:
        name: Registry key (``"dtd"``).
        image_root: Folder the items' paths are relative to.
        train, val, test: The splits.
        classnames: Prompt-ready class names (``_`` replaced by spaces), indexed by label.
        source: Where the splits came from (split file or folder), for messages and summaries.
        published: CoOp's published split sizes, for comparison in :meth:`summary` (never asserted).
        info: What was done to the data so far (few-shot draw, class subset), recorded for the run.
    """

    name: str
    image_root: str
    train: list[Datum]
    val: list[Datum]
    test: list[Datum]
    classnames: list[str]
    source: str
    published: PublishedCounts | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def split(self, split: str) -> list[Datum]:
        """Items of ``"train"``, ``"val"`` or ``"test"``."""
        if split not in SPLITS:
            raise KeyError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        return getattr(self, split)

    def abspath(self, item: Datum) -> str:
        """The image file of an item."""
        return os.path.join(self.image_root, *item.path.split("/"))

    def samples(self, split: str) -> list[tuple[str, int]]:
        """``(file, label)`` pairs of a split, the shape :class:`radapter.data.base.ImageSampleDataset` takes."""
        return [(self.abspath(item), item.label) for item in self.split(split)]

    def with_splits(self, **changes: Any) -> CoOpData:
        """A copy with some fields replaced (the item lists are not shared with the original)."""
        copy = replace(self, info=dict(self.info))
        for split in SPLITS:
            setattr(copy, split, list(changes.pop(split, getattr(self, split))))
        for key, value in changes.items():
            setattr(copy, key, value)
        return copy

    def summary(self) -> dict[str, Any]:
        """Counts of the loaded data (and CoOp's published ones): a report, not a check."""
        out: dict[str, Any] = {
            "dataset": self.name,
            "classes": len(self.classnames),
            "train": len(self.train),
            "val": len(self.val),
            "test": len(self.test),
            "source": self.source,
        }
        if self.published is not None:
            p = self.published
            out["published"] = {"classes": p.classes, "train": p.train, "val": p.val, "test": p.test}
        if self.info:
            out["info"] = dict(self.info)
        return out

    def __str__(self) -> str:
        text = (
            f"{self.name}: {len(self.classnames)} classes, train {len(self.train)} / val {len(self.val)} / "
            f"test {len(self.test)} images"
        )
        if self.published is not None and not self.info:
            p = self.published
            val = "= test" if p.val is None else str(p.val)
            text += f" (CoOp's split: {p.classes} classes, {p.train} / {val} / {p.test})"
        for key, value in self.info.items():
            text += f"; {key}: {value}"
        return text


def labels_of(items: Iterable[Datum]) -> list[int]:
    """The labels of some items, in order."""
    return [item.label for item in items]
