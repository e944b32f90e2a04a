"""Class lists and mappings shipped in ``radapter/data/resources/`` (see its README for their sources).

Everything is read lazily and cached: importing :mod:`radapter.data` costs nothing, and the lists
are returned as tuples so a caller cannot change the shared copy by accident.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

__all__ = [
    "ObjectNetClass",
    "imagenet_a_wnids",
    "imagenet_classnames",
    "imagenet_r_wnids",
    "imagenet_wnids",
    "objectnet_classes",
    "read_resource",
]

_PACKAGE = "radapter.data"
_FOLDER = "resources"


def read_resource(name: str) -> str:
    """Text of a file in ``radapter/data/resources/``."""
    return resources.files(_PACKAGE).joinpath(_FOLDER).joinpath(name).read_text(encoding="utf-8")


def _lines(name: str) -> tuple[str, ...]:
    return tuple(line.strip() for line in read_resource(name).splitlines() if line.strip())


@cache
def imagenet_wnids() -> tuple[str, ...]:
    """The 1000 ImageNet-1k WordNet IDs in label order (``n01440764`` is label 0)."""
    return _lines("imagenet_wnids.txt")


@cache
def imagenet_classnames() -> tuple[str, ...]:
    """The 1000 ImageNet class names CLIP uses for zero-shot classification, in label order.

    Taken from ``open_clip.zero_shot_metadata.IMAGENET_CLASSNAMES`` rather than shipped, so they are
    the exact names open_clip's own zero-shot evaluation uses.
    """
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

    return tuple(IMAGENET_CLASSNAMES)


@cache
def imagenet_a_wnids() -> tuple[str, ...]:
    """The 200 WordNet IDs of ImageNet-A, in ImageNet label order (ImageNet-A label ``i`` is entry ``i``)."""
    return _lines("imagenet_a_wnids.txt")


@cache
def imagenet_r_wnids() -> tuple[str, ...]:
    """The 200 WordNet IDs of ImageNet-R, in ImageNet label order (ImageNet-R label ``i`` is entry ``i``)."""
    return _lines("imagenet_r_wnids.txt")


@dataclass(frozen=True)
class ObjectNetClass:
    """One of the 113 ObjectNet classes that overlap ImageNet-1k.

    Attributes:
        folder: Folder name under ``objectnet-1.0/images/`` (e.g. ``"alarm_clock"``).
        name: ObjectNet's class name (e.g. ``"Alarm clock"``).
        imagenet_indices: ImageNet-1k labels this class corresponds to (e.g. analog and digital clock).
        imagenet_wnids: The same classes as WordNet IDs.
    """

    folder: str
    name: str
    imagenet_indices: tuple[int, ...]
    imagenet_wnids: tuple[str, ...]


@cache
def objectnet_classes() -> tuple[ObjectNetClass, ...]:
    """The 113 ObjectNet classes mapped to ImageNet, sorted by folder name (= ObjectNet label order)."""
    raw = json.loads(read_resource("objectnet_to_imagenet.json"))
    return tuple(
        ObjectNetClass(
            folder=folder,
            name=entry["name"],
            imagenet_indices=tuple(int(i) for i in entry["imagenet_indices"]),
            imagenet_wnids=tuple(entry["imagenet_wnids"]),
        )
        for folder, entry in sorted(raw.items())
    )
