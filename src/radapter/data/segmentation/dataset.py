"""detectron2's semantic-segmentation layout as a torch Dataset.

The layout (``detectron2.data.datasets.load_sem_seg``): an image folder and a label folder; an image and its label
share the file stem (``000123.jpg`` <-> ``000123.png``); labels hold 0-based train ids with one ignore value
(255 for PNG datasets, 65535 for ADE-847 and 459 for Pascal-Context-459, both 16-bit TIFF).

Unlike ``load_sem_seg``, which silently evaluates the intersection when the folders disagree, pairing is strict by
default: an image without a label (or the reverse) is an error naming the files; ``allow_unpaired=True`` keeps the
intersection and records what was dropped in :attr:`SemanticSegmentationDataset.unpaired`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..images import load_image
from .classes import SegClassList
from .labels import LabelFileError, check_label_values, read_label
from .transforms import SegEvalTransform

__all__ = ["IMAGE_EXTS", "LABEL_EXTS", "SemanticSegmentationDataset", "collate_eval", "pair_files"]

IMAGE_EXTS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
LABEL_EXTS: tuple[str, ...] = (".png", ".tif", ".tiff")

Transform = Callable[..., tuple[torch.Tensor, torch.Tensor]]


def _stems(folder: str, exts: Sequence[str], what: str) -> dict[str, str]:
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{what} folder {folder} does not exist")
    out: dict[str, str] = {}
    for name in sorted(os.listdir(folder)):
        stem, ext = os.path.splitext(name)
        if ext.lower() not in exts:
            continue
        if stem in out:
            raise ValueError(
                f"{what} folder {folder}: two files share the stem {stem!r} ({os.path.basename(out[stem])}, {name})"
            )
        out[stem] = os.path.join(folder, name)
    return out


def pair_files(
    image_dir: str,
    label_dir: str,
    image_exts: Sequence[str] = IMAGE_EXTS,
    label_exts: Sequence[str] = LABEL_EXTS,
    allow_unpaired: bool = False,
) -> tuple[list[tuple[str, str]], list[str]]:
    """``(image, label)`` path pairs matched by file stem, sorted by stem, and the unpaired files.

    Raises:
        FileNotFoundError: a folder is missing.
        ValueError: no pairs, or (without ``allow_unpaired``) files on one side only, named in the message.
    """
    images = _stems(image_dir, tuple(e.lower() for e in image_exts), "image")
    labels = _stems(label_dir, tuple(e.lower() for e in label_exts), "label")
    common = sorted(images.keys() & labels.keys())
    unpaired = sorted(
        [images[s] for s in images.keys() - labels.keys()] + [labels[s] for s in labels.keys() - images.keys()]
    )
    if unpaired and not allow_unpaired:
        shown = ", ".join(unpaired[:5]) + (f" and {len(unpaired) - 5} more" if len(unpaired) > 5 else "")
        raise ValueError(
            f"{len(unpaired)} files in {image_dir} / {label_dir} have no partner with the same stem: {shown} "
            "(pass allow_unpaired=True to use the matched pairs only)"
        )
    if not common:
        raise ValueError(
            f"no image/label pairs: {len(images)} images {image_exts} in {image_dir}, "
            f"{len(labels)} labels {label_exts} in {label_dir}"
        )
    return [(images[s], labels[s]) for s in common], unpaired


class SemanticSegmentationDataset(Dataset):
    """(image tensor [3, H, W], label LongTensor [H, W]) pairs from detectron2's layout.

    Args:
        image_dir, label_dir: The two folders.
        num_classes: When given, every label value must be a class id or ``ignore_value`` (checked per sample;
            a mismatch names the file).
        ignore_value: Ignore value of the label files (see :class:`SegClassList.ignore_value`).
        transform: ``(PIL image, label array, rng) -> (image tensor, label tensor)``; default
            :class:`SegEvalTransform` (full resolution). Use :class:`SegTrainTransform` for training crops.
        seed: Seed of the per-sample random draws: sample ``i`` of epoch ``e`` uses ``default_rng([seed, e, i])``,
            so the augmentation does not depend on the DataLoader's worker assignment.
        allow_unpaired: Use matched pairs only instead of failing on unpaired files.
        image_exts, label_exts: File extensions considered (case-insensitive).
    """

    def __init__(
        self,
        image_dir: str,
        label_dir: str,
        num_classes: int | None = None,
        ignore_value: int = 255,
        transform: Transform | None = None,
        seed: int = 0,
        allow_unpaired: bool = False,
        image_exts: Sequence[str] = IMAGE_EXTS,
        label_exts: Sequence[str] = LABEL_EXTS,
    ):
        self.image_dir, self.label_dir = image_dir, label_dir
        self.pairs, self.unpaired = pair_files(image_dir, label_dir, image_exts, label_exts, allow_unpaired)
        self.num_classes = num_classes
        self.ignore_value = int(ignore_value)
        if num_classes is not None and 0 <= self.ignore_value < num_classes:
            raise ValueError(f"ignore_value {ignore_value} is a class id (num_classes={num_classes})")
        self.transform = transform if transform is not None else SegEvalTransform()
        self.seed = int(seed)
        self.epoch = 0

    @classmethod
    def from_class_list(
        cls, image_dir: str, label_dir: str, classes: SegClassList, **kwargs
    ) -> SemanticSegmentationDataset:
        """A dataset whose label check and ignore value come from a class list."""
        return cls(image_dir, label_dir, num_classes=classes.num_classes, ignore_value=classes.ignore_value, **kwargs)

    def set_epoch(self, epoch: int) -> None:
        """Changes the augmentation draws (call once per epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.pairs)

    def read(self, i: int) -> tuple[object, np.ndarray]:
        """The raw (PIL image, label array) of sample ``i``, checked."""
        image_path, label_path = self.pairs[i]
        image = load_image(image_path)
        label = read_label(label_path)
        if (image.height, image.width) != label.shape:
            raise LabelFileError(
                label_path,
                f"size {label.shape[1]}x{label.shape[0]} differs from its image {image_path} ({image.width}x{image.height})",
            )
        if self.num_classes is not None:
            check_label_values(label, self.num_classes, self.ignore_value, label_path)
        return image, label

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, label = self.read(i)
        rng = np.random.default_rng([self.seed, self.epoch, i])
        return self.transform(image, label, rng)


def collate_eval(batch: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Keeps full-resolution samples of different sizes as lists (images, labels)."""
    return [b[0] for b in batch], [b[1] for b in batch]
