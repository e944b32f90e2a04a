"""Reading image files, and finding the ones that cannot be read.

A fine-tuning run reads hundreds of thousands of files; one truncated JPEG should not cost the
run, and when it does fail the message must say *which* file. Two policies are offered:

* strict (default): :func:`load_image` raises :class:`CorruptImageError`, naming the file and the
  reason, the first time a bad file is read;
* skip: :func:`scan_images` checks every file up front (``PIL.Image.verify`` and a full decode,
  behind a progress bar) so a dataset can drop the bad ones and the run can report
  ``skipped N corrupt images: ...``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from radapter.data.errors import DataTypeError
from radapter.errors import UserError

__all__ = [
    "IMAGE_EXTENSIONS",
    "CorruptImageError",
    "SkippedImages",
    "check_image",
    "image_paths",
    "is_image_file",
    "load_image",
    "scan_images",
    "to_rgb",
]

#: File name endings (lower case) read as images; matching ignores case, so ImageNet's ``.JPEG`` counts.
#: The same set as torchvision's ``ImageFolder``, so a folder lists the same images in both.
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


class CorruptImageError(UserError, ValueError):
    """An image file is missing, unreadable or not a decodable image.

    Attributes:
        path: The file that failed.
        reason: Why it failed, in words (the underlying exception's message).
    """

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(
            f"cannot read image {self.path}: {reason} "
            "(pass skip_corrupt=True to the dataset to drop unreadable images and count them)"
        )

    def __reduce__(self):
        # DataLoader workers pickle exceptions back to the main process; the default reduce would
        # call __init__ with the formatted message only and fail.
        return (type(self), (self.path, self.reason))


def is_image_file(name: str | os.PathLike) -> bool:
    """Tells whether a file name has one of :data:`IMAGE_EXTENSIONS` (case-insensitive)."""
    return os.fspath(name).lower().endswith(IMAGE_EXTENSIONS)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def load_image(path: str | os.PathLike) -> Image.Image:
    """Reads an image file fully into memory as an RGB image.

    The pixels are decoded here, not lazily, so a truncated file fails now with its name attached
    rather than later inside a transform with no hint of the file.

    Args:
        path: Image file.

    Returns:
        The decoded image in 8-bit RGB mode (palette, grey, CMYK and alpha images are converted; 16-bit and
        float images are scaled, see :func:`to_rgb`).

    Raises:
        CorruptImageError: The file is missing, unreadable, not an image, or truncated.
    """
    try:
        with warnings.catch_warnings():
            # PIL warns (rather than fails) on some damaged files, e.g. bad EXIF or huge images;
            # a warning for every such file floods the log of a long run, and the decode below
            # still catches files that are actually unusable.
            warnings.simplefilter("ignore", UserWarning)
            with Image.open(path) as img:
                img.load()
                return to_rgb(img)
    except FileNotFoundError as exc:
        raise CorruptImageError(path, "file not found") from exc
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        # OSError covers UnidentifiedImageError and "image file is truncated"; SyntaxError and
        # ValueError are what some PIL plugins raise for malformed headers.
        raise CorruptImageError(path, _describe(exc)) from exc


def to_rgb(image: Image.Image) -> Image.Image:
    """Converts any PIL image to 8-bit RGB, scaling high-bit-depth images instead of clipping them.

    PIL's own ``convert("RGB")`` clips a 16-bit image (``I;16``, ``I``) at 255, which turns almost every
    pixel of a 16-bit PNG or TIFF white without a word. Here 16-bit values are scaled by ``255 / 65535``,
    and float images (``F``) by 255 when they lie in [0, 1] (clipped to [0, 255] otherwise).
    """
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I;16") or image.mode == "I":
        values = np.asarray(image, dtype=np.float64)
        grey = np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if values.size and np.nanmax(values) <= 1.0:
            values = values * 255.0
        grey = np.clip(np.rint(np.nan_to_num(values)), 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    return image.convert("RGB")


def check_image(path: str | os.PathLike) -> str | None:
    """Checks that a file is a readable image.

    Runs ``PIL.Image.verify`` (structure and checksums, cheap) and then a full decode, because
    ``verify`` alone misses truncated pixel data in several formats.

    Args:
        path: Image file.

    Returns:
        ``None`` if the file is a good image, otherwise the reason it is not.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            with Image.open(path) as img:
                img.verify()
            # verify() leaves the image object unusable, so the decode needs a fresh handle.
            with Image.open(path) as img:
                img.load()
    except FileNotFoundError:
        return "file not found"
    except Exception as exc:  # noqa: BLE001 - any failure to decode means "corrupt" here
        return _describe(exc)
    return None


@dataclass
class SkippedImages:
    """The images a dataset dropped because they could not be read.

    Attributes:
        items: ``(path, reason)`` pairs, in dataset order.
    """

    items: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.items)

    def __bool__(self) -> bool:
        return bool(self.items)

    @property
    def paths(self) -> list[str]:
        """The skipped files."""
        return [path for path, _ in self.items]

    def extend(self, other: SkippedImages) -> None:
        """Adds another report's items to this one."""
        self.items.extend(other.items)

    def message(self, max_items: int = 5) -> str:
        """One line for the run log, e.g. ``skipped 2 corrupt images: a.jpg (truncated), b.png (...)``.

        Args:
            max_items: How many files to name before summarising the rest as a count.
        """
        if not self.items:
            return "skipped 0 corrupt images"
        shown = ", ".join(f"{path} ({reason})" for path, reason in self.items[:max_items])
        more = len(self.items) - max_items
        tail = f", ... and {more} more" if more > 0 else ""
        noun = "image" if len(self.items) == 1 else "images"
        return f"skipped {len(self.items)} corrupt {noun}: {shown}{tail}"

    def __str__(self) -> str:
        return self.message()


def image_paths(dataset_or_paths: Any) -> list[str]:
    """The image files behind a dataset, in its order (one entry per sample, repeats kept).

    Understands what radapter builds: a sequence of paths, a dataset with a ``paths`` list (every
    radapter dataset), ``torch.utils.data.Subset`` (recursively), ``ConcatDataset`` and an
    :class:`~radapter.data.shifts.EvalSet` (through its ``dataset``).

    Raises:
        TypeError: The object holds no list of files (e.g. images generated in memory).
    """
    obj = dataset_or_paths
    if isinstance(obj, (str, os.PathLike)):
        return [os.fspath(obj)]
    paths = getattr(obj, "paths", None)
    if paths is not None and not callable(paths):
        return [os.fspath(p) for p in paths]
    if hasattr(obj, "indices") and hasattr(obj, "dataset"):  # torch Subset
        inner = image_paths(obj.dataset)
        return [inner[int(i)] for i in obj.indices]
    if hasattr(obj, "datasets") and hasattr(obj, "cumulative_sizes"):  # torch ConcatDataset
        return [p for part in obj.datasets for p in image_paths(part)]
    if hasattr(obj, "dataset") and hasattr(obj, "project_logits"):  # EvalSet
        return image_paths(obj.dataset)
    if isinstance(obj, Sequence) and all(isinstance(p, (str, os.PathLike)) for p in obj):
        return [os.fspath(p) for p in obj]
    raise DataTypeError(
        f"scan_images: cannot list the image files of {type(obj).__name__}; give a list of paths or a dataset "
        "with a 'paths' list (ImageFolderDataset, CsvDataset, an EvalSet, or a Subset of one)"
    )


def scan_images(
    dataset_or_paths: Any,
    *,
    progress: bool = True,
    desc: str = "checking images",
    num_workers: int | None = None,
) -> list[tuple[str, str]]:
    """Finds the unreadable images of a dataset before a run depends on them.

    Each distinct file is opened, verified and fully decoded once (:func:`check_image`), so a truncated
    JPEG is found now rather than hours into training. Decoding runs in a thread pool: PIL releases the
    GIL while decoding, so threads give a real speed-up on a 50k-image set without worker processes.

    Example:
        >>> for path, reason in scan_images(ImageFolderDataset("data/pets")):  # doctest: +SKIP
        ...     print(f"{path}: {reason}")

    Args:
        dataset_or_paths: Image files, or a dataset :func:`image_paths` understands.
        progress: Show a tqdm progress bar (on stderr).
        desc: Label of the progress bar.
        num_workers: Threads to use; default ``min(8, os.cpu_count())``. ``0`` or ``1`` checks serially.

    Returns:
        ``(path, reason)`` for each bad file, once per file, in the order of first appearance.

    Raises:
        TypeError: ``dataset_or_paths`` holds no list of files.
    """
    # A caption CSV lists an image once per caption: decode each file once.
    paths = list(dict.fromkeys(image_paths(dataset_or_paths)))
    if num_workers is None:
        num_workers = min(8, os.cpu_count() or 1)
    bar = tqdm(total=len(paths), desc=desc, unit="img", disable=not progress, leave=False)
    reasons: list[str | None] = []
    try:
        if num_workers <= 1:
            for path in paths:
                reasons.append(check_image(path))
                bar.update()
        else:
            with ThreadPoolExecutor(max_workers=num_workers) as pool:
                # map() keeps the input order, so the report lists files in dataset order.
                for reason in pool.map(check_image, paths):
                    reasons.append(reason)
                    bar.update()
    finally:
        bar.close()
    return [(path, reason) for path, reason in zip(paths, reasons) if reason is not None]
