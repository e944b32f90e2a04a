"""The list-of-files dataset every radapter dataset builds on, and the error for a bad layout.

Every dataset here is, underneath, a list of ``(path, label)`` samples plus the class names of
its label space. Keeping that one shape means the corrupt-image scan, k-shot sampling and
hold-out splits work the same on an ImageFolder, a FLYP CSV or ObjectNet.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from torch.utils.data import Dataset

from radapter.data.errors import DataError
from radapter.data.images import SkippedImages, load_image, scan_images

__all__ = [
    "DatasetLayoutError",
    "ImageSampleDataset",
    "index_classnames",
    "normalize_classname",
    "preview",
    "render_tree",
    "skip_corrupt_images",
]


class DatasetLayoutError(DataError):
    """A dataset's files are not where, or not what, the loader expects.

    The message names the path, says what is wrong and, where it helps, draws the expected
    layout, so a user can fix the folder without reading the loader's code.

    Attributes:
        path: The folder or file at fault.
        problem: What is wrong, in words.
        expected_layout: The tree diagram of a valid layout, or ``None``.
    """

    def __init__(self, path: str | os.PathLike, problem: str, expected_layout: str | None = None):
        self.path = os.fspath(path)
        self.problem = problem
        self.expected_layout = expected_layout
        message = f"{self.path}: {problem}"
        if expected_layout:
            message += "\nexpected layout:\n" + "\n".join("    " + line for line in expected_layout.splitlines())
        super().__init__(message)

    def __reduce__(self):
        return (type(self), (self.path, self.problem, self.expected_layout))


def normalize_classname(name: str) -> str:
    """Canonical form used to match class names: lower case, underscores as spaces, single spaces."""
    return " ".join(str(name).replace("_", " ").lower().split())


def index_classnames(names: Sequence[str]) -> tuple[dict[str, int], set[str]]:
    """Indexes class names by their normalised form, for matching names written by people.

    Args:
        names: Class names, indexed by label.

    Returns:
        ``{normalised name: label}`` (first label for a repeated name) and the set of normalised names
        that occur more than once, which cannot be matched by name (ImageNet has two "sunglasses").
    """
    index: dict[str, int] = {}
    repeated: set[str] = set()
    for label, name in enumerate(names):
        key = normalize_classname(name)
        if key in index:
            repeated.add(key)
        else:
            index[key] = label
    return index, repeated


def preview(items: Iterable[Any], limit: int = 5) -> str:
    """Lists the first few items and counts the rest, for error messages.

    >>> preview(["a", "b", "c"], limit=2)
    'a, b ... and 1 more'
    """
    items = [str(item) for item in items]
    text = ", ".join(items[:limit])
    if len(items) > limit:
        text += f" ... and {len(items) - limit} more"
    return text


def render_tree(root: str, children: Sequence[str | tuple[str, Sequence[str]]]) -> str:
    """Draws a two-level folder tree, as ``tree`` would.

    Args:
        root: Name shown for the top folder.
        children: Entries of the top folder: a file (``str``), or a folder as ``(name, entries)``.
            End a name with a space and a comment to annotate it.

    Returns:
        The drawing, one line per entry.
    """
    lines = [root.rstrip("/") + "/"]
    for i, child in enumerate(children):
        last = i == len(children) - 1
        branch, stem = ("└── ", "    ") if last else ("├── ", "│   ")
        if isinstance(child, str):
            lines.append(branch + child)
            continue
        name, entries = child
        lines.append(branch + name)
        for j, entry in enumerate(entries):
            lines.append(stem + ("└── " if j == len(entries) - 1 else "├── ") + entry)
    return "\n".join(lines)


class ImageSampleDataset(Dataset):
    """A map-style dataset of image files with integer labels.

    Attributes:
        samples: ``(path, label)`` for each image, in a fixed, sorted order.
        targets: The labels alone, aligned with ``samples``.
        classnames: Name of each label, indexed by label.
        transform: Applied to the decoded RGB ``PIL.Image``; ``None`` returns the image itself.
        skipped: Images dropped by :meth:`skip_corrupt_images` so far.
    """

    def __init__(
        self,
        samples: Sequence[tuple[str, int]],
        classnames: Sequence[str] | None,
        transform: Callable[[Any], Any] | None = None,
    ):
        self.samples: list[tuple[str, int]] = [(os.fspath(path), int(label)) for path, label in samples]
        self.targets: list[int] = [label for _, label in self.samples]
        self.classnames: list[str] | None = list(classnames) if classnames is not None else None
        self.transform = transform
        self.skipped = SkippedImages()

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        """Returns ``(image, label)``; the image is transformed if a transform was given.

        Raises:
            CorruptImageError: The file cannot be read (its path is in the message).
        """
        path, label = self.samples[index]
        image = load_image(path)
        if self.transform is not None:
            image = self.transform(image)
        return image, label

    @property
    def paths(self) -> list[str]:
        """The image files, aligned with ``samples``."""
        return [path for path, _ in self.samples]

    def skip_corrupt_images(self, *, progress: bool = True, num_workers: int | None = None) -> SkippedImages:
        """Checks every file and drops those that cannot be read.

        Args:
            progress: Show a progress bar while checking.
            num_workers: Threads used to decode; see :func:`radapter.data.images.scan_images`.

        Returns:
            The files dropped by this call (also added to :attr:`skipped`); ``str()`` of it is the
            log line ``skipped N corrupt images: ...``.
        """
        bad = scan_images(
            self.paths, progress=progress, desc=f"checking {type(self).__name__}", num_workers=num_workers
        )
        if bad:
            bad_paths = {path for path, _ in bad}
            self._keep([i for i, path in enumerate(self.paths) if path not in bad_paths])
        report = SkippedImages(list(bad))
        self.skipped.extend(report)
        return report

    def relabel(self, mapping: Sequence[int], classnames: Sequence[str] | None) -> None:
        """Moves the dataset into another label space: label ``l`` becomes ``mapping[l]``.

        Used to put a folder's classes in the order of a classification head.

        Args:
            mapping: New label of each current label; a negative entry marks a label that must not occur.
            classnames: Names of the new label space.

        Raises:
            ValueError: A sample's label has no (non-negative) new label.
        """
        new_targets = [mapping[label] if 0 <= label < len(mapping) else -1 for label in self.targets]
        unmapped = sorted({old for old, new in zip(self.targets, new_targets) if new < 0})
        if unmapped:
            raise DataError(f"relabel: labels {preview(unmapped)} have no new label")
        self._on_relabel(mapping)
        self.targets = new_targets
        self.samples = [(path, label) for (path, _), label in zip(self.samples, new_targets)]
        self.classnames = list(classnames) if classnames is not None else None

    def _on_relabel(self, mapping: Sequence[int]) -> None:
        """Hook for subclasses that keep their own label bookkeeping."""

    def _keep(self, indices: Sequence[int]) -> None:
        """Keeps only the samples at ``indices``; subclasses extend it to keep their own per-sample lists aligned."""
        self.samples = [self.samples[i] for i in indices]
        self.targets = [self.targets[i] for i in indices]

    def __repr__(self) -> str:
        classes = len(self.classnames) if self.classnames is not None else "?"
        return f"{type(self).__name__}({len(self)} images, {classes} classes)"


def skip_corrupt_images(
    dataset: ImageSampleDataset, *, progress: bool = True, num_workers: int | None = None
) -> SkippedImages:
    """Drops the unreadable images of ``dataset`` in place and reports them.

    Example:
        >>> report = skip_corrupt_images(train_set)  # doctest: +SKIP
        >>> if report:
        ...     log.warning(str(report))  # "skipped 2 corrupt images: ..."

    Args:
        dataset: Any radapter dataset (ImageFolder, CSV, ImageNet shift).
        progress: Show a progress bar while checking.
        num_workers: Threads used to decode.

    Returns:
        The files dropped.
    """
    return dataset.skip_corrupt_images(progress=progress, num_workers=num_workers)
