"""ImageNet val in its original flat layout: 50,000 files in one folder, labels in a separate file.

As downloaded, ``ILSVRC2012_img_val.tar`` unpacks to ``ILSVRC2012_val_00000001.JPEG`` ...
``ILSVRC2012_val_00050000.JPEG`` with no class folders. Two label files are common:

* the devkit's ``ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt``: line ``n`` is the
  ``ILSVRC2012_ID`` (1..1000) of image ``n``. These ids follow the WordNet hierarchy (``1`` is
  ``n02119789`` kit fox), **not** the sorted-wnid label order every model uses; they are translated
  through the devkit's ``meta.mat`` table (:func:`~radapter.data.class_lists.imagenet_ilsvrc2012_ids`).
* Kaggle's ``LOC_val_solution.csv`` (ImageNet object localisation challenge):
  ``ImageId,PredictionString`` rows whose first token is the image's wnid
  (``ILSVRC2012_val_00008726,n02119789 255 142 454 329 ...``).

Either file is found next to the images or in a folder above them (up to four levels, also inside
``ILSVRC2012_devkit_t12/data/``), or given explicitly. Labels come out in the sorted-wnid order
(``n01440764`` = 0), the same as the class-folder layout.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from collections.abc import Callable
from typing import Any

from radapter.data.base import DatasetLayoutError, ImageSampleDataset, preview, render_tree
from radapter.data.class_lists import imagenet_classnames, imagenet_ilsvrc2012_ids, imagenet_wnids
from radapter.data.images import is_image_file

__all__ = ["VAL_LABEL_FILES", "FlatImageNetVal", "find_val_labels", "is_flat_val", "read_flat_val"]

log = logging.getLogger("radapter")

#: Label files of the flat val layout, in the order they are looked for.
VAL_LABEL_FILES: tuple[str, ...] = ("ILSVRC2012_validation_ground_truth.txt", "LOC_val_solution.csv")
# Where, below each searched folder, a label file may sit (the devkit keeps it in data/).
_SUBFOLDERS = ("", "ILSVRC2012_devkit_t12/data", "data")
_SEARCH_LEVELS = 4
_VAL_NAME = re.compile(r"^ILSVRC2012_val_(\d{8})\.[A-Za-z]+$")


def flat_val_layout(root: str = "ILSVRC2012_img_val") -> str:
    """The drawing of the flat layout used in errors."""
    return render_tree(
        os.path.basename(os.path.dirname(os.path.abspath(root))) or ".",
        [
            (os.path.basename(root.rstrip("/\\")) + "/", ["ILSVRC2012_val_00000001.JPEG", "...   (50,000 files)"]),
            ("ILSVRC2012_devkit_t12/data/", ["ILSVRC2012_validation_ground_truth.txt   (or LOC_val_solution.csv)"]),
        ],
    )


def is_flat_val(root: str | os.PathLike) -> bool:
    """Whether ``root`` holds val images directly (``ILSVRC2012_val_*.JPEG``) rather than in class folders."""
    root = os.fspath(root)
    if not os.path.isdir(root):
        return False
    with os.scandir(root) as entries:
        return any(e.is_file() and _VAL_NAME.match(e.name) for e in entries)


def _search_dirs(root: str) -> list[str]:
    dirs, current = [], os.path.abspath(root)
    for _ in range(_SEARCH_LEVELS + 1):
        dirs.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return dirs


def find_val_labels(root: str | os.PathLike) -> str | None:
    """The first label file (:data:`VAL_LABEL_FILES`) in ``root`` or up to four folders above it, or ``None``."""
    for folder in _search_dirs(os.fspath(root)):
        for sub in _SUBFOLDERS:
            for name in VAL_LABEL_FILES:
                path = os.path.join(folder, sub, name)
                if os.path.isfile(path):
                    return path
    return None


def read_flat_val(root: str | os.PathLike, labels_file: str | os.PathLike | None = None) -> list[tuple[str, int]]:
    """Lists the images of a flat val folder with their labels in the sorted-wnid order.

    Args:
        root: The folder of ``ILSVRC2012_val_NNNNNNNN.JPEG`` files (a part of the 50,000 is fine).
        labels_file: The devkit ground truth or ``LOC_val_solution.csv``; default: :func:`find_val_labels`.
            A ``.csv`` file is read as Kaggle's solution file, anything else as the devkit's.

    Returns:
        ``(path, label)`` per image, sorted by file name; ``label`` indexes :func:`imagenet_wnids`.

    Raises:
        DatasetLayoutError: No label file, a file named otherwise in the folder, an image the label file
            does not cover, or a malformed label file (the message names the line).
    """
    root = os.fspath(root)
    layout = flat_val_layout(root)
    if labels_file is None:
        labels_file = find_val_labels(root)
        if labels_file is None:
            searched = ", ".join(_search_dirs(root))
            raise DatasetLayoutError(
                root,
                f"ImageNet val images without class folders need a label file: looked for "
                f"{' or '.join(VAL_LABEL_FILES)} (also under ILSVRC2012_devkit_t12/data/) in {searched}; "
                "put one there or give its path (eval set key 'labels_file')",
                layout,
            )
    labels_file = os.fspath(labels_file)
    if not os.path.isfile(labels_file):
        raise DatasetLayoutError(labels_file, "ImageNet val label file not found", layout)
    with os.scandir(root) as entries:
        names = sorted(e.name for e in entries if e.is_file() and not e.name.startswith("."))
    images = [name for name in names if is_image_file(name)]
    strangers = [name for name in images if not _VAL_NAME.match(name)]
    if strangers:
        raise DatasetLayoutError(
            root, f"files not named ILSVRC2012_val_NNNNNNNN.<ext> among the val images: {preview(strangers)}", layout
        )
    if not images:
        raise DatasetLayoutError(root, "no ImageNet val images (ILSVRC2012_val_NNNNNNNN.JPEG)", layout)
    if labels_file.lower().endswith(".csv"):
        wnid_of = _read_kaggle_solution(labels_file)
        keys = [os.path.splitext(name)[0] for name in images]
    else:
        wnid_of = _read_devkit_ground_truth(labels_file)
        keys = [str(int(_VAL_NAME.match(name).group(1))) for name in images]  # type: ignore[union-attr]
    uncovered = [name for name, key in zip(images, keys) if key not in wnid_of]
    if uncovered:
        raise DatasetLayoutError(
            labels_file,
            f"has {len(wnid_of)} labels but the folder holds images it does not label: {preview(uncovered)}",
        )
    position = {wnid: i for i, wnid in enumerate(imagenet_wnids())}
    return [(os.path.join(root, name), position[wnid_of[key]]) for name, key in zip(images, keys)]


def _read_devkit_ground_truth(path: str) -> dict[str, str]:
    """``{image number as text: wnid}`` from the devkit's one-ILSVRC2012_ID-per-line file."""
    ids = imagenet_ilsvrc2012_ids()
    with open(path, encoding="utf-8-sig") as f:
        lines = [line.strip() for line in f]
    while lines and not lines[-1]:
        lines.pop()
    out: dict[str, str] = {}
    for number, text in enumerate(lines, 1):
        # Line n labels image n, so a blank or stray line would shift every label after it.
        if not text.isdigit() or not 1 <= int(text) <= 1000:
            raise DatasetLayoutError(
                path, f"line {number}: {text!r} is not an ILSVRC2012_ID (1..1000); expected one per image, in order"
            )
        out[str(number)] = ids[int(text) - 1]
    return out


def _read_kaggle_solution(path: str) -> dict[str, str]:
    """``{ImageId: wnid}`` from ``LOC_val_solution.csv`` (the first token of PredictionString is the class)."""
    wnids = set(imagenet_wnids())
    out: dict[str, str] = {}
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        header = [cell.strip() for cell in next(reader, [])]
        if "ImageId" not in header or "PredictionString" not in header:
            raise DatasetLayoutError(path, f"expected columns ImageId,PredictionString; found {header}")
        image_col, pred_col = header.index("ImageId"), header.index("PredictionString")
        for number, row in enumerate(reader, 2):
            if not any(cell.strip() for cell in row):
                continue
            tokens = row[pred_col].split() if len(row) > pred_col else []
            if not tokens or tokens[0] not in wnids:
                raise DatasetLayoutError(
                    path, f"line {number}: PredictionString must start with an ImageNet-1k wnid, got {row!r}"
                )
            out[row[image_col].strip()] = tokens[0]
    return out


class FlatImageNetVal(ImageSampleDataset):
    """ImageNet val as unpacked from ``ILSVRC2012_img_val.tar``: labels in the 1000-class sorted-wnid order.

    Args:
        root: The folder of ``ILSVRC2012_val_NNNNNNNN.JPEG`` files.
        transform: Applied to each decoded RGB ``PIL.Image``.
        labels_file: The devkit ground truth or ``LOC_val_solution.csv``; default: found by :func:`find_val_labels`.

    Attributes:
        root: The image folder.
        labels_file: The label file read.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        transform: Callable[[Any], Any] | None = None,
        labels_file: str | os.PathLike | None = None,
    ):
        self.root = os.fspath(root)
        self.labels_file = os.fspath(labels_file) if labels_file is not None else find_val_labels(self.root)
        super().__init__(read_flat_val(self.root, self.labels_file), imagenet_classnames(), transform)
        log.info("ImageNet val at %s: %d images labelled by %s", self.root, len(self), self.labels_file)
