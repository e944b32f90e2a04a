"""`ImageTextSet`: images with several captions each, the one result type of every retrieval reader.

A retrieval set is N images and, for image i, a list of captions. Evaluation encodes every image once and
every caption once and needs, for the flattened caption list, the image each caption belongs to::

    texts         = [c for caps in captions for c in caps]           # M = Σ_i len(captions[i])
    text_to_image = [i for i, caps in enumerate(captions) for _ in caps]

Counts are part of the result (``n_images``, ``n_texts``): COCO Karpathy test is 5,000 / 25,000 and
Flickr30k test 1,000 / 5,000 at 5 captions per image, so a wrong split shows at once.

Captions per image (``select_captions``): 5 by default in the benchmark readers — COCO has images with 6
or 7 captions, and the VSE++ protocol keeps the first 5 — or ``"all"``. An image with fewer captions than
asked is an error naming the image and the annotation file, never a silently shorter list.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from radapter.data.base import DatasetLayoutError
from radapter.data.errors import DataError
from radapter.data.images import load_image

__all__ = ["CaptionsPerImage", "ImageTextSet", "check_image_files", "parse_captions_per_image", "select_captions"]

CaptionsPerImage = int | str  # a positive int or "all"


def parse_captions_per_image(value: CaptionsPerImage) -> int | None:
    """``"all"`` -> None; a positive int (or its string) -> that int; anything else is an error."""
    if isinstance(value, str):
        if value.strip().lower() == "all":
            return None
        if value.strip().isdigit():
            value = int(value)
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or int(value) < 1:
        raise DataError(f"captions_per_image must be a positive integer or 'all', got {value!r}")
    return int(value)


def select_captions(
    captions: Sequence[str], captions_per_image: CaptionsPerImage, image: str, source: str | os.PathLike
) -> list[str]:
    """The first ``captions_per_image`` captions of one image (all of them for ``"all"``), stripped.

    Raises:
        DatasetLayoutError: The image has fewer captions than asked (none at all, for ``"all"``), or an empty
            caption; the message names the image and ``source``.
    """
    k = parse_captions_per_image(captions_per_image)
    cleaned = [str(c).strip() for c in captions]
    if any(not c for c in cleaned):
        raise DatasetLayoutError(source, f"image {image} has an empty caption")
    need = 1 if k is None else k
    if len(cleaned) < need:
        hint = "" if k is None else " (pass captions_per_image='all' or a smaller number to keep such images)"
        raise DatasetLayoutError(source, f"image {image} has {len(cleaned)} caption(s), {need} asked for{hint}")
    return cleaned if k is None else cleaned[:k]


def check_image_files(paths: Sequence[str], source: str | os.PathLike, root: str | os.PathLike | None) -> None:
    """Checks that every image file exists (a ``stat`` per file, no decoding).

    Raises:
        DatasetLayoutError: Naming the first missing file, how many are missing, and the image root.
    """
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        where = f" (image root {os.fspath(root)})" if root is not None else ""
        raise DatasetLayoutError(
            source, f"{len(missing)} of {len(paths)} image files not found{where}; the first is {missing[0]}"
        )


@dataclass
class ImageTextSet:
    """N images with a list of captions each.

    Attributes:
        name: Short name used in result keys and tables ("coco_test", "flickr30k_test", "id", ...).
        captions: ``captions[i]`` are the captions of image i.
        image_ids: An id per image (COCO id, Flickr file stem, group key, or the index).
        image_paths: Image files, one per image; None when the pixels are held in memory.
        pixels: uint8 [N, H, W, 3] images held in memory (the built-in world); None for files.
        source: The annotation file the set was read from, for messages.
    """

    name: str
    captions: list[list[str]]
    image_ids: list[Any]
    image_paths: list[str] | None = None
    pixels: np.ndarray | None = None
    source: str | None = None
    _text_to_image: torch.Tensor | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if (self.image_paths is None) == (self.pixels is None):
            raise DataError("ImageTextSet needs exactly one of image_paths and pixels")
        n = len(self.image_paths) if self.image_paths is not None else len(self.pixels)
        if len(self.captions) != n or len(self.image_ids) != n:
            raise DataError(
                f"ImageTextSet {self.name!r}: {n} images but {len(self.captions)} caption lists "
                f"and {len(self.image_ids)} image ids"
            )
        empty = [self.image_ids[i] for i, caps in enumerate(self.captions) if not caps]
        if empty:
            raise DataError(f"ImageTextSet {self.name!r}: images without captions: {empty[:5]}")

    @classmethod
    def from_arrays(
        cls, name: str, images: np.ndarray, captions: Sequence[Sequence[str]], image_ids: Sequence[Any] | None = None
    ) -> ImageTextSet:
        """A set whose images are held in memory as uint8 [N, H, W, 3] (e.g. the built-in world)."""
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise DataError(f"images must be uint8 [N, H, W, 3], got {images.dtype} {images.shape}")
        ids = list(range(len(images))) if image_ids is None else list(image_ids)
        return cls(name=name, captions=[list(c) for c in captions], image_ids=ids, pixels=images)

    @property
    def n_images(self) -> int:
        return len(self.captions)

    @property
    def n_texts(self) -> int:
        return sum(len(c) for c in self.captions)

    def __len__(self) -> int:
        return self.n_images

    @property
    def texts(self) -> list[str]:
        """All captions, image by image: [M]."""
        return [c for caps in self.captions for c in caps]

    @property
    def text_to_image(self) -> torch.Tensor:
        """int64 [M]: the image index of each caption of :attr:`texts`."""
        if self._text_to_image is None or self._text_to_image.numel() != self.n_texts:
            counts = torch.tensor([len(c) for c in self.captions], dtype=torch.int64)
            self._text_to_image = torch.repeat_interleave(torch.arange(self.n_images), counts)
        return self._text_to_image

    def load_image(self, index: int) -> Image.Image:
        """Image ``index`` as an RGB PIL image (decoded from its file, or from the in-memory pixels)."""
        if self.pixels is not None:
            return Image.fromarray(self.pixels[index])
        return load_image(self.image_paths[index])

    def subset(self, indices: Sequence[int], name: str | None = None) -> ImageTextSet:
        """The images at ``indices`` (in that order) with their captions."""
        idx = [int(i) for i in indices]
        return ImageTextSet(
            name=name or self.name,
            captions=[list(self.captions[i]) for i in idx],
            image_ids=[self.image_ids[i] for i in idx],
            image_paths=None if self.image_paths is None else [self.image_paths[i] for i in idx],
            pixels=None if self.pixels is None else self.pixels[idx],
            source=self.source,
        )

    def counts(self) -> dict[str, int]:
        """``{"n_images", "n_texts"}``, stored with every result."""
        return {"n_images": self.n_images, "n_texts": self.n_texts}

    def describe(self) -> str:
        """One line for logs: ``coco_test: 5000 images, 25000 captions (5 per image) from <file>``."""
        per = {len(c) for c in self.captions}
        per_text = f"{per.pop()} per image" if len(per) == 1 else f"{min(per)}-{max(per)} per image"
        src = f" from {self.source}" if self.source else ""
        return f"{self.name}: {self.n_images} images, {self.n_texts} captions ({per_text}){src}"

    def __repr__(self) -> str:
        return f"ImageTextSet({self.describe()})"
