"""torch Datasets over an :class:`ImageTextSet`: evaluation images, and training pairs for the step sampler.

* :class:`RetrievalImages` — each image once, ``(image tensor, image index)``: evaluation encodes every image
  once (the authors' code encodes each COCO image five times, once per caption); the captions are encoded
  from :attr:`ImageTextSet.texts` separately.
* :class:`RetrievalTrainPairs` — items keyed ``(index, epoch, seed)`` as the
  :class:`~radapter.training.sampler.StepSampler` yields them: the image augmented under a private RNG
  seeded with ``seed`` (``torch.random.fork_rng``), ONE of its captions drawn with ``random.Random(seed)``, and
  its group id (the image index, the MPM-NCE positive key: captions of the same image are positives). All
  randomness comes from the item's seed, so workers and resumption do not change a run.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import Dataset

from radapter.data.retrieval.sets import ImageTextSet

__all__ = ["RetrievalImages", "RetrievalTrainPairs"]


class RetrievalImages(Dataset):
    """Each image of a set once: ``(transform(image), index)``.

    Args:
        data: The set.
        transform: Applied to the RGB PIL image (e.g. the eval transform); None returns the PIL image.
    """

    def __init__(self, data: ImageTextSet, transform: Callable[[Any], Any] | None = None) -> None:
        self.data, self.transform = data, transform

    def __len__(self) -> int:
        return self.data.n_images

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image = self.data.load_image(index)
        if self.transform is not None:
            image = self.transform(image)
        return image, index


class RetrievalTrainPairs(Dataset):
    """Training pairs: for key ``(index, epoch, seed)``, ``(augmented image, one caption, group id)``.

    The sampler draws images (not captions), so an image with 7 captions is seen as often as one with 5, and
    each visit shows one caption drawn uniformly with ``random.Random(seed)``.

    Args:
        data: The training set.
        transform: Train augmentation on the RGB PIL image, run under ``torch.random.fork_rng`` seeded with
            the item's seed; None returns the PIL image.
    """

    def __init__(self, data: ImageTextSet, transform: Callable[[Any], Any] | None = None) -> None:
        self.data, self.transform = data, transform

    def __len__(self) -> int:
        return self.data.n_images

    @property
    def groups(self) -> list[int]:
        """Group id of every image (its index): the labels MPM-NCE compares."""
        return list(range(self.data.n_images))

    def __getitem__(self, key: tuple[int, int, int]) -> tuple[Any, str, int]:
        index, _epoch, seed = key
        image = self.data.load_image(index)
        if self.transform is not None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                image = self.transform(image)
        captions = self.data.captions[index]
        return image, captions[random.Random(seed).randrange(len(captions))], int(index)
