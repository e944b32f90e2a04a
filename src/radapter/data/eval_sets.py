"""Evaluation sets named in a config, so a user's own shifted data needs no code.

A run's config lists its evaluation sets; each entry becomes an :class:`EvalSetConfig`::

    eval_sets:
      - {name: ImageNetA, kind: imagenet-a, path: /data/imagenet-a}
      - {name: PetsSketch, kind: imagefolder, path: /data/pets_sketch}            # all head classes
      - {name: PetsNight, kind: imagefolder, path: /data/pets_night,
         class_subset: [beagle, pug, 12]}                                          # 3 of the head's classes
      - {name: PetsCsv, kind: csv, path: /data/pets_test.csv, ood: false}

:func:`build_eval_set` turns one into an :class:`~radapter.data.shifts.EvalSet` for a head with the
given class names. An ImageFolder's classes are matched to the head's by training folder when the
head's folders are given and hold them all, otherwise *by name* (case, spaces and underscores ignored;
a purely numeric folder name that matches no class is read as a head index, as ImageNet-V2 names its
folders). Without ``class_subset`` the set is scored over the whole head; with it, the logits are
restricted to those classes, and the set's classes must be exactly them. The ImageNet kinds check
that the head holds the 1000 ImageNet classes, in any order, and read each class from its column.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from radapter.data.base import DatasetLayoutError, ImageSampleDataset, index_classnames, normalize_classname, preview
from radapter.data.csvdata import CsvDataset
from radapter.data.errors import DataError
from radapter.data.folders import ImageFolderDataset
from radapter.data.shifts import IMAGENET_KINDS, EvalSet, build_imagenet_eval_set, imagenet_eval_set_key

__all__ = ["EVAL_SET_KINDS", "EvalSetConfig", "build_eval_set", "match_classnames"]

#: Values accepted for :attr:`EvalSetConfig.kind`.
EVAL_SET_KINDS: tuple[str, ...] = ("imagefolder", "csv", *IMAGENET_KINDS)


@dataclass
class EvalSetConfig:
    """One evaluation set of a run."""

    name: str = field(metadata={"help": "Name in results and tables, e.g. 'ImageNetA' (results key '<name>:top1')."})
    path: str = field(metadata={"help": "Folder of the set (the CSV file for kind 'csv'). Nothing is downloaded."})
    kind: str = field(
        default="imagefolder",
        metadata={"help": f"Layout of the set: one of {', '.join(EVAL_SET_KINDS)}."},
    )
    ood: bool | None = field(
        default=None,
        metadata={"help": "Count the set in 'avg OOD'. Default: true, except for kind 'imagenet' (the ID set)."},
    )
    class_subset: list[str | int] | None = field(
        default=None,
        metadata={
            "help": "Head classes this set uses, by name or integer index; logits are restricted to them and the "
            "set's classes must be exactly these. Default: the set is scored over every head class."
        },
    )
    csv_sep: str = field(default="\t", metadata={"help": "Field separator of a 'csv' set."})
    csv_img_key: str = field(default="filepath", metadata={"help": "Image-path column of a 'csv' set."})
    csv_label_key: str = field(default="class", metadata={"help": "Label column of a 'csv' set (ints or names)."})
    labels_file: str | None = field(
        default=None,
        metadata={
            "help": "Kind 'imagenet' in the original flat layout (ILSVRC2012_img_val/*.JPEG): the devkit's "
            "ILSVRC2012_validation_ground_truth.txt or Kaggle's LOC_val_solution.csv. Default: looked for next to "
            "and above the images."
        },
    )

    def __post_init__(self) -> None:
        if not str(self.name).strip():
            raise DataError("eval set 'name' must not be empty")
        if not isinstance(self.path, (str, os.PathLike)):
            raise DataError(f"eval set {self.name!r}: 'path' must be a file or folder path, got {self.path!r}")
        if not str(self.path).strip():
            raise DataError(f"eval set {self.name!r}: 'path' must not be empty")
        self.path = os.path.expanduser(os.fspath(self.path))
        kind = str(self.kind).strip().lower()
        if kind not in ("imagefolder", "csv"):
            try:
                kind = imagenet_eval_set_key(kind)
            except ValueError:
                close = difflib.get_close_matches(kind, EVAL_SET_KINDS, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise DataError(
                    f"eval set {self.name!r}: unknown kind {self.kind!r}{hint}; expected one of {', '.join(EVAL_SET_KINDS)}"
                ) from None
        self.kind = kind
        if self.ood is None:
            self.ood = kind != "imagenet"
        if self.class_subset is not None:
            if isinstance(self.class_subset, (str, bytes)) or not isinstance(self.class_subset, Sequence):
                raise DataError(f"eval set {self.name!r}: class_subset must be a list of class names or indices")
            self.class_subset = list(self.class_subset)
            if not self.class_subset:
                raise DataError(f"eval set {self.name!r}: class_subset is empty")
        if self.labels_file is not None:
            if kind != "imagenet":
                raise DataError(f"eval set {self.name!r}: labels_file is for kind 'imagenet' (flat val), not {kind!r}")
            self.labels_file = os.fspath(self.labels_file)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvalSetConfig:
        """Builds a config from a YAML/JSON mapping; an unknown key is an error naming the closest valid key."""
        valid = [f.name for f in fields(cls)]
        for key in data:
            if key not in valid:
                close = difflib.get_close_matches(str(key), valid, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise DataError(f"unknown eval set key {key!r}{hint}; valid keys: {', '.join(valid)}")
        missing = [name for name in ("name", "path") if name not in data]
        if missing:
            raise DataError(f"eval set entry {dict(data)!r} lacks {', '.join(missing)}")
        return cls(**data)


def match_classnames(
    queries: Sequence[str | int], head_classnames: Sequence[str], *, context: str = "", numeric_as_index: bool = True
) -> list[int]:
    """Finds head classes by name (or integer index).

    Args:
        queries: Class names (matched ignoring case, spaces and underscores) or integer indices.
        head_classnames: Names of the head's classes, indexed by label.
        context: Prefix for error messages (e.g. ``"eval set 'X': "``).
        numeric_as_index: Read a string of digits that matches no name as an index.

    Returns:
        The head index of each query, in order.

    Raises:
        ValueError: Names no head class has (with close matches), names two classes share, or indices out
            of range; every offending query is listed.
    """
    by_name, repeated = index_classnames(head_classnames)
    found: list[int] = []
    unknown: list[str] = []
    ambiguous: list[str] = []
    for query in queries:
        if isinstance(query, bool):  # bool is an int; True as a class is surely a config mistake
            unknown.append(repr(query))
            continue
        if isinstance(query, int):
            if 0 <= query < len(head_classnames):
                found.append(query)
            else:
                unknown.append(f"index {query} (the head has {len(head_classnames)} classes)")
            continue
        key = normalize_classname(query)
        if key in repeated:
            ambiguous.append(str(query))
        elif key in by_name:
            found.append(by_name[key])
        elif numeric_as_index and key.isdigit() and int(key) < len(head_classnames):
            found.append(int(key))
        else:
            close = difflib.get_close_matches(key, list(by_name), n=2)
            unknown.append(f"{query!r}" + (f" (close: {', '.join(close)})" if close else ""))
    if unknown or ambiguous:
        parts = []
        if unknown:
            parts.append(f"not in the head's {len(head_classnames)} classes: {preview(unknown)}")
        if ambiguous:
            parts.append(f"name more than one head class, use an integer index instead: {preview(ambiguous)}")
        raise DataError(context + "; ".join(parts))
    return found


def build_eval_set(
    cfg: EvalSetConfig,
    head_classnames: Sequence[str],
    transform: Callable[[Any], Any] | None = None,
    *,
    skip_corrupt: bool = False,
    progress: bool = True,
    head_folders: Sequence[str] | None = None,
) -> EvalSet:
    """Builds the evaluation set a config entry describes, for a head with the given classes.

    Args:
        cfg: The entry.
        head_classnames: Class names of the classification head, indexed by head label.
        transform: Eval transform of the model (ObjectNet's border crop is added for kind ``objectnet``).
        skip_corrupt: Drop unreadable images (after checking the classes) instead of failing when read.
        progress: Show a progress bar during the ``skip_corrupt`` scan.
        head_folders: The training folder of each head class (``ImageFolderDataset.class_folders``), when the
            head comes from an ImageFolder. Matches are then exact: ImageNet kinds use WordNet-ID folders, and an
            ImageFolder set whose folders are all training folders is matched by folder before names.

    Returns:
        An :class:`EvalSet` whose labels are in its own label space: the head's classes, or ``class_subset``
        in the order given.

    Raises:
        ValueError: A class of the set is not in the head, ``class_subset`` does not match the set's classes,
            or an ImageNet kind is used with a head that is not the 1000 ImageNet classes (in any order: the
            set reads each class from its column, see :func:`~radapter.data.class_lists.match_imagenet_classes`).
        DatasetLayoutError: The files are missing or malformed.
    """
    head = list(head_classnames)
    context = f"eval set {cfg.name!r} ({cfg.path}): "
    if head_folders is not None and len(head_folders) != len(head):
        raise DataError(context + f"{len(head_folders)} head folders for {len(head)} head classes")
    if cfg.kind in IMAGENET_KINDS:
        if cfg.class_subset is not None:
            raise DataError(context + f"class_subset cannot be used with kind {cfg.kind!r}, whose classes are fixed")
        if len(head) != 1000:
            raise DataError(
                context + f"kind {cfg.kind!r} needs a head over the 1000 ImageNet classes, but the head has {len(head)}"
            )
        return build_imagenet_eval_set(
            cfg.kind,
            cfg.path,
            transform,
            skip_corrupt=skip_corrupt,
            ood=cfg.ood,
            set_name=cfg.name,
            progress=progress,
            head_classnames=head,
            head_folders=head_folders,
            labels_file=cfg.labels_file,
        )

    dataset: ImageSampleDataset
    if cfg.kind == "csv":
        dataset = CsvDataset(
            cfg.path,
            transform,
            classnames=head,
            sep=cfg.csv_sep,
            img_key=cfg.csv_img_key,
            caption_key=None,
            label_key=cfg.csv_label_key,
        )
    else:
        dataset = ImageFolderDataset(cfg.path, transform)
        assert dataset.classnames is not None
        if head_folders is not None and set(dataset.class_folders) <= set(head_folders):
            # The same folders as training (e.g. WordNet IDs): exact, whatever the names.
            column = {folder: i for i, folder in enumerate(head_folders)}
            to_head = [column[folder] for folder in dataset.class_folders]
        else:
            to_head = match_classnames(dataset.classnames, head, context=context + "folder classes ")
        dataset.relabel(to_head, head)

    if cfg.class_subset is None:
        eval_set = EvalSet(cfg.name, dataset, head, bool(cfg.ood), class_map=None, num_head_classes=len(head))
    else:
        subset = match_classnames(cfg.class_subset, head, context=context + "class_subset ")
        duplicates = sorted({head[i] for i in subset if subset.count(i) > 1})
        if duplicates:
            raise DataError(context + f"class_subset lists classes twice: {preview(duplicates)}")
        present = set(dataset.targets)
        outside = sorted(present - set(subset))
        absent = [i for i in subset if i not in present]
        if outside or absent:
            parts = []
            if outside:
                parts.append(f"the set has classes not in class_subset: {preview(head[i] for i in outside)}")
            if absent:
                parts.append(f"class_subset has classes the set has no images of: {preview(head[i] for i in absent)}")
            raise DatasetLayoutError(cfg.path, context + "; ".join(parts))
        position = {head_index: label for label, head_index in enumerate(subset)}
        dataset.relabel([position.get(i, -1) for i in range(len(head))], [head[i] for i in subset])
        eval_set = EvalSet(
            cfg.name,
            dataset,
            [head[i] for i in subset],
            bool(cfg.ood),
            class_map=[[i] for i in subset],
            num_head_classes=len(head),
        )
    if skip_corrupt:
        dataset.skip_corrupt_images(progress=progress)
    return eval_set
