"""The FLYP / R-Adapter CSV format: one row per image, with a caption and a class.

The authors' scripts (FLYP, R-Adapter) train from a TAB-separated file written by pandas::

    filepath<TAB>title<TAB>class
    train/n01440764/img1.JPEG<TAB>a photo of a tench.<TAB>0
    ...

``filepath`` is absolute or relative to ``root`` (default: the CSV's own folder, so a dataset can be
moved as a whole), ``title`` is the caption contrastive methods train on, and ``class`` is the
integer label of the head (or a class name, see :class:`CsvDataset`). All three header names and
the separator are configurable, since CSVs written by other tools name them differently.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from radapter.data.base import (
    DatasetLayoutError,
    ImageSampleDataset,
    index_classnames,
    normalize_classname,
    preview,
    render_tree,
)
from radapter.data.errors import DataTypeError

__all__ = ["CsvDataset"]

_INT_RE = re.compile(r"^[+-]?\d+(\.0*)?$")


def _csv_layout(name: str, sep: str, img_key: str, caption_key: str | None, label_key: str) -> str:
    shown_sep = "<TAB>" if sep == "\t" else sep
    header = shown_sep.join(k for k in (img_key, caption_key, label_key) if k)
    row = shown_sep.join(
        v for k, v in ((img_key, "images/0001.jpg"), (caption_key, "a photo of a dog."), (label_key, "3")) if k
    )
    return render_tree(
        ".",
        [
            f"{name}    (first line: {header}; then rows like: {row})",
            ("images/", ["0001.jpg    (relative paths are resolved against the CSV's folder or `root`)", "..."]),
        ],
    )


_PROBE = 10


def _check_first_paths(csv_path: str, root: str, paths: Sequence[str], *, root_given: bool) -> None:
    """Fails now when the first rows all point at missing files: the paths are resolved against the wrong folder.

    Only a few rows are probed (a stat each), so a million-row CSV on a network disk costs nothing; a single
    missing file is left to :func:`~radapter.data.images.scan_images` or the read that meets it.
    """
    probe = paths[:_PROBE]
    if any(os.path.exists(path) for path in probe):
        return
    where = "the given root" if root_given else "the CSV's folder (the default root)"
    raise DatasetLayoutError(
        csv_path,
        f"none of the first {len(probe)} image files exist, e.g. {probe[0]}; relative paths are resolved against "
        f"{where} {root}: pass root= the folder they are relative to (or fix the paths)",
    )


class CsvDataset(ImageSampleDataset):
    """Images listed in a delimited text file, with captions and class labels.

    The label column may hold integers (labels of the head, as in the authors' CSVs) or class names.
    Integers are checked against ``classnames`` when it is given. Names are looked up in
    ``classnames`` (case, spaces and underscores ignored) when it is given; otherwise the sorted
    distinct names become the classes.

    Args:
        path: The CSV file.
        transform: Applied to each decoded RGB ``PIL.Image``.
        classnames: Class names of the label space in label order (e.g. the head's), a list; a mapping is refused.
            Required to name integer labels.
        skip_corrupt: Check every image now and drop unreadable ones; otherwise the first unreadable image
            raises :class:`~radapter.data.images.CorruptImageError` when read.
        root: Folder that relative paths are resolved against; default the CSV's folder.
        sep: Field separator; TAB by default, as in FLYP.
        img_key: Header of the image-path column.
        caption_key: Header of the caption column, or ``None`` for files without captions.
        label_key: Header of the label column.
        progress: Show a progress bar during the ``skip_corrupt`` scan.

    Attributes:
        samples: ``(path, label)`` pairs; ``targets``: the labels.
        captions: Caption of each sample (aligned with ``samples``); ``None`` for a row whose caption is empty or
            blank, and for every row without ``caption_key``. See :meth:`caption`.
        classnames: Names of the label space, or ``None`` for integer labels given without ``classnames``.

    Raises:
        DatasetLayoutError: The file is missing or empty, a column is missing (the message lists the columns
            found), a row is short or has an empty path, or a label is unknown or out of range.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        transform: Callable[[Any], Any] | None = None,
        classnames: Sequence[str] | None = None,
        skip_corrupt: bool = False,
        *,
        root: str | os.PathLike | None = None,
        sep: str = "\t",
        img_key: str = "filepath",
        caption_key: str | None = "title",
        label_key: str = "class",
        progress: bool = True,
    ):
        if isinstance(classnames, (Mapping, str)):
            # list() of a {wnid: name} table gives its keys: the head would be named "n01440764", ... silently.
            raise DataTypeError(
                f"{os.fspath(path)}: classnames for a CSV is the list of class names in label order (integer labels "
                f"index it), got a {type(classnames).__name__}; e.g. pass list(imagenet_classnames()) for ImageNet"
            )
        self.path = os.path.expanduser(os.fspath(path))
        self.root = (
            os.path.expanduser(os.fspath(root)) if root is not None else os.path.dirname(os.path.abspath(self.path))
        )
        layout = _csv_layout(os.path.basename(self.path), sep, img_key, caption_key, label_key)
        if not os.path.isfile(self.path):
            raise DatasetLayoutError(self.path, "CSV file not found", layout)

        # utf-8-sig: a byte-order mark (Excel, some Windows tools) would otherwise glue onto the first header.
        with open(self.path, encoding="utf-8-sig", newline="") as f:
            rows = list(csv.reader(f, delimiter=sep))
        rows = [row for row in rows if any(cell.strip() for cell in row)]
        if not rows:
            raise DatasetLayoutError(self.path, "CSV file is empty (a header line is needed)", layout)
        header = [cell.strip() for cell in rows[0]]
        columns = {}
        for role, key in (("image path", img_key), ("caption", caption_key), ("label", label_key)):
            if key is None:
                continue
            if key not in header:
                hint = " (is the separator right? the header was read as one column)" if len(header) == 1 else ""
                raise DatasetLayoutError(
                    self.path,
                    f"missing {role} column {key!r}; columns found: {header}{hint}. "
                    f"Set img_key / caption_key / label_key (and sep) to match the file",
                    layout,
                )
            columns[role] = header.index(key)

        paths: list[str] = []
        captions: list[str | None] = []
        raw_labels: list[str] = []
        width = max(columns.values()) + 1
        for line_no, row in enumerate(rows[1:], start=2):
            if len(row) < width:
                raise DatasetLayoutError(
                    self.path, f"row {line_no} has {len(row)} fields, expected {len(header)}: {row}"
                )
            file = row[columns["image path"]].strip()
            if not file:
                raise DatasetLayoutError(self.path, f"row {line_no} has an empty {img_key!r}")
            file = os.path.expanduser(file)
            paths.append(file if os.path.isabs(file) else os.path.join(self.root, file))
            raw_labels.append(row[columns["label"]].strip())
            # An empty caption is no caption: the training view falls back to templates for that row.
            caption = row[columns["caption"]].strip() if "caption" in columns else ""
            captions.append(caption or None)
        if not paths:
            raise DatasetLayoutError(self.path, "CSV file has a header but no rows", layout)
        _check_first_paths(self.path, self.root, paths, root_given=root is not None)

        labels, names = self._parse_labels(raw_labels, classnames, label_key)
        self.captions: list[str | None] = captions
        super().__init__(list(zip(paths, labels)), names, transform)
        if skip_corrupt:
            self.skip_corrupt_images(progress=progress)

    def _parse_labels(
        self, raw: list[str], classnames: Sequence[str] | None, label_key: str
    ) -> tuple[list[int], list[str] | None]:
        names = list(classnames) if classnames is not None else None
        empty = [row for row, value in enumerate(raw, start=2) if not value]
        if empty:
            raise DatasetLayoutError(self.path, f"rows with an empty {label_key!r} label: {preview(empty)}")
        if all(_INT_RE.match(value) for value in raw):
            labels = [int(float(value)) for value in raw]
            if names is not None:
                bad = [(i + 2, v) for i, v in enumerate(labels) if not 0 <= v < len(names)]
                if bad:
                    raise DatasetLayoutError(
                        self.path,
                        f"labels in column {label_key!r} must lie in [0, {len(names)}) for {len(names)} classes; "
                        f"out of range (row, label): {preview(bad)}",
                    )
            elif min(labels) < 0:
                raise DatasetLayoutError(self.path, f"negative label {min(labels)} in column {label_key!r}")
            return labels, names
        numeric = sorted({value for value in raw if _INT_RE.match(value)}, key=lambda v: int(float(v)))
        if numeric and names is None:
            # Without class names a "3" among names would silently become a class called "3".
            words = sorted({value for value in raw if not _INT_RE.match(value)})
            raise DatasetLayoutError(
                self.path,
                f"column {label_key!r} mixes integer labels ({preview(numeric)}) and class names ({preview(words)}); "
                "use one kind throughout the column",
            )
        if names is None:
            # Sorted, so the label of a class does not depend on row order.
            names = sorted(set(raw))
            position = {name: i for i, name in enumerate(names)}
            return [position[value] for value in raw], names
        by_name, repeated = index_classnames(names)
        unknown = sorted({value for value in raw if normalize_classname(value) not in by_name})
        if unknown:
            raise DatasetLayoutError(
                self.path,
                f"class names in column {label_key!r} not among the {len(names)} given classes: {preview(unknown)}",
            )
        ambiguous = sorted({value for value in raw if normalize_classname(value) in repeated})
        if ambiguous:
            raise DatasetLayoutError(
                self.path,
                f"class names in column {label_key!r} name more than one class: {preview(ambiguous)}; "
                "use integer labels for these rows",
            )
        return [by_name[normalize_classname(value)] for value in raw], names

    @property
    def has_captions(self) -> bool:
        """Whether any row has a caption."""
        return any(caption is not None for caption in self.captions)

    def caption(self, index: int) -> str | None:
        """The caption of sample ``index`` (surrounding spaces removed), or ``None`` when its row has none.

        The sample's image and label are ``self[index]``; a training view that needs the text too reads
        ``(dataset[i], dataset.caption(i))`` with the same index (also through a ``Subset``'s indices).

        Raises:
            IndexError: ``index`` is not a sample of the dataset.
        """
        if not -len(self.captions) <= index < len(self.captions):
            raise IndexError(f"caption {index} of {len(self.captions)} rows of {self.path}")
        return self.captions[index]

    def _keep(self, indices: Sequence[int]) -> None:
        super()._keep(indices)
        self.captions = [self.captions[i] for i in indices]
