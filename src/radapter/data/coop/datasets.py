"""Torch datasets over the splits of a :class:`~radapter.data.coop.base.CoOpData`.

:func:`split_dataset` gives a map-style dataset of ``(image, label)`` (an
:class:`~radapter.data.base.ImageSampleDataset`, so corrupt-image scans and relabelling work as for every
radapter dataset). :class:`SeededTrainView` wraps it for the step sampler: the item for key
``(index, epoch, seed)`` is the image augmented under a private RNG seeded by ``seed``, so an augmentation
does not depend on the worker that draws it, on how many items came before, or on a resumption.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import Dataset

from radapter.data.base import ImageSampleDataset
from radapter.data.coop.base import CoOpData

__all__ = ["SeededTrainView", "split_dataset"]


def split_dataset(data: CoOpData, split: str, transform: Callable[[Any], Any] | None = None) -> ImageSampleDataset:
    """A dataset of ``(transform(image), label)`` over one split (``transform=None``: the PIL image).

    Args:
        data: The dataset.
        split: ``"train"``, ``"val"`` or ``"test"``.
        transform: Applied to each decoded RGB image.

    Returns:
        An :class:`ImageSampleDataset` whose ``classnames`` are ``data.classnames``.
    """
    return ImageSampleDataset(data.samples(split), data.classnames, transform=transform)


class SeededTrainView(Dataset):
    """Training items keyed by ``(index, epoch, seed)``: the augmentation is a function of ``seed`` alone.

    Args:
        base: A dataset of ``(image, label)`` returning untransformed images (``split_dataset(..., None)``).
        transform: The training augmentation; it runs under ``torch.random.fork_rng`` seeded with ``seed``
            (torchvision's random transforms draw from torch's global RNG, which stays untouched outside).
    """

    def __init__(self, base: Dataset, transform: Callable[[Any], Any] | None) -> None:
        self.base = base
        self.transform = transform

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key: tuple[int, int, int]) -> tuple[Any, int]:
        """Returns ``(augmented image, label)`` for ``key = (index, epoch, seed)`` (``epoch`` is not used here)."""
        index, _epoch, seed = key
        image, label = self.base[index]
        if self.transform is not None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(seed))
                image = self.transform(image)
        return image, int(label)
