"""Class lists and mappings shipped in ``radapter/data/resources/`` (see its README for their sources).

Everything is read lazily and cached: importing :mod:`radapter.data` costs nothing, and the lists
are returned as tuples so a caller cannot change the shared copy by accident.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources

from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

from radapter.data.base import normalize_classname, preview
from radapter.data.errors import DataError

__all__ = [
    "ObjectNetClass",
    "imagenet_a_wnids",
    "imagenet_classnames",
    "imagenet_ilsvrc2012_ids",
    "imagenet_lemmas",
    "imagenet_r_wnids",
    "imagenet_wnids",
    "match_imagenet_classes",
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


@cache
def imagenet_ilsvrc2012_ids() -> tuple[str, ...]:
    """WordNet ID of each ILSVRC2012_ID of the devkit: entry ``i`` has ``ILSVRC2012_ID == i + 1``.

    The devkit's ``ILSVRC2012_validation_ground_truth.txt`` labels the val images with these ids (1..1000,
    ordered by the WordNet hierarchy, ``1`` = ``n02119789`` kit fox), *not* with the sorted-wnid label order
    of :func:`imagenet_wnids`. The table is the ``synsets`` struct of the devkit's ``meta.mat``.
    """
    return _lines("imagenet_ilsvrc2012_ids.txt")


@cache
def imagenet_lemmas() -> tuple[tuple[str, ...], ...]:
    """The WordNet lemmas of each ImageNet class, in label order (``("tench", "Tinca tinca")`` is label 0)."""
    table: list[tuple[str, ...]] = []
    for line in _lines("imagenet_lemmas.txt"):
        _, _, lemmas = line.partition("\t")
        table.append(tuple(lemma.strip() for lemma in lemmas.split(",") if lemma.strip()))
    return tuple(table)


def _looks_like_wnid(text: str) -> bool:
    return len(text) == 9 and text[0] == "n" and text[1:].isdigit()


def match_imagenet_classes(
    head_classnames: Sequence[str], head_folders: Sequence[str] | None = None, *, context: str = ""
) -> list[int]:
    """Finds each ImageNet class among a classification head's classes.

    A head built from a training ImageFolder is in the order of *its* folders; the ImageNet evaluation sets
    label their images in ImageNet's order. This function relates the two so an evaluation can read the
    right logit, and refuses heads that are not the 1000 ImageNet classes.

    Classes are identified, in this order, by

    1. WordNet ID: ``head_folders`` (or the names themselves) all look like ``n01440764``;
    2. name, ignoring case, spaces and underscores: CLIP's ImageNet names (:func:`imagenet_classnames`), the
       full WordNet description (``"tench, Tinca tinca"``), or any single WordNet lemma (``"Tinca tinca"``).
       A name shared by several classes (``"crane"``: the bird and the machine) is settled by the other
       names where possible. Two head classes with the *same* name (CLIP's list has two ``"sunglasses"``
       and two ``"missile"``) are taken in ImageNet order: a text head cannot tell them apart anyway.

    Args:
        head_classnames: Class names of the head, indexed by head column.
        head_folders: Folder (or other key) of each head class, e.g. ``ImageFolderDataset.class_folders``.
        context: Prefix of error messages (e.g. ``"eval set 'ImageNetA': "``).

    Returns:
        ``columns`` with ``columns[i]`` the head column of ImageNet class ``i`` (a permutation of
        ``range(1000)``; the identity when the head is in ImageNet order).

    Raises:
        ValueError: The head does not have exactly the 1000 ImageNet classes, or names cannot be matched
            one to one; the message lists what did not match and what was expected.
    """
    names = [str(name) for name in head_classnames]
    expected = (
        "the training classes must be the 1000 ImageNet classes, named by WordNet ID (folders n01440764 ...) "
        "or by ImageNet class name (CLIP's names, e.g. 'tench', or a WordNet lemma)"
    )
    if head_folders is not None and len(head_folders) != len(names):
        raise DataError(context + f"{len(head_folders)} head folders for {len(names)} head classes")
    if len(names) != 1000:
        raise DataError(context + f"{expected}; the head has {len(names)} classes ({_preview(names)})")
    wnids = imagenet_wnids()
    for keys in (head_folders, names):
        if keys is not None and all(_looks_like_wnid(str(k).strip()) for k in keys):
            return _match_wnids([str(k).strip() for k in keys], wnids, context, expected)
    return _match_names(names, context, expected)


def _match_wnids(keys: list[str], wnids: Sequence[str], context: str, expected: str) -> list[int]:
    column = {key: i for i, key in enumerate(keys)}
    unknown = sorted(set(keys) - set(wnids))
    missing = [w for w in wnids if w not in column]
    if unknown or missing or len(column) != len(keys):
        raise DataError(
            context + f"{expected}; the head's WordNet IDs are not the ImageNet-1k ones: "
            f"not in ImageNet-1k: {_preview(unknown)}; ImageNet classes missing: {_preview(missing)}"
        )
    return [column[w] for w in wnids]


def _match_names(names: list[str], context: str, expected: str) -> list[int]:
    norm = normalize_classname
    clip_names = imagenet_classnames()
    lemmas = imagenet_lemmas()
    # Three tiers, most specific first: CLIP's name, the full WordNet description, one lemma.
    tiers: list[dict[str, set[int]]] = [{}, {}, {}]
    for i in range(1000):
        tiers[0].setdefault(norm(clip_names[i]), set()).add(i)
        tiers[1].setdefault(norm(", ".join(lemmas[i])), set()).add(i)
        for lemma in lemmas[i]:
            tiers[2].setdefault(norm(lemma), set()).add(i)
    # Each head class keeps its candidates per tier; a more specific tier wins while it has a class left.
    candidates = [[set(t.get(norm(name), ())) for t in tiers] for name in names]
    unknown = [name for name, tiered in zip(names, candidates) if not any(tiered)]
    if unknown:
        raise DataError(
            context + f"{expected}; {len(unknown)} head classes are not ImageNet class names: {_preview(unknown)}"
        )

    assigned: dict[int, int] = {}  # head column -> ImageNet index
    taken: set[int] = set()

    def left(column: int) -> set[int]:
        return next((options - taken for options in candidates[column] if options - taken), set())

    changed = True
    while changed:
        # A name with one candidate left is settled, which may leave one candidate for another name.
        changed = False
        for column in range(len(names)):
            if column not in assigned and len(options := left(column)) == 1:
                (index,) = options
                assigned[column], changed = index, True
                taken.add(index)
    by_name: dict[str, list[int]] = {}
    for column in range(len(names)):
        if column not in assigned:
            by_name.setdefault(norm(names[column]), []).append(column)
    unresolved: list[str] = []
    for columns in by_name.values():
        pool = sorted(set().union(*candidates[columns[0]]) - taken)
        if len(columns) > 1 and len(pool) == len(columns):
            # The same name on several head classes: indistinguishable by text, taken in ImageNet order.
            assigned.update(zip(columns, pool))
            taken.update(pool)
        else:
            unresolved.append(f"{names[columns[0]]!r} (ImageNet classes {', '.join(clip_names[i] for i in pool)})")
    if unresolved:
        missing = [clip_names[i] for i in range(1000) if i not in taken]
        raise DataError(
            context + f"{expected}; cannot match these head classes one to one: {_preview(unresolved)}; "
            f"ImageNet classes without a head class: {_preview(missing)}. Name the folders by WordNet ID "
            "(and give the class names separately) to make the match exact"
        )
    columns = [0] * 1000
    for column, index in assigned.items():
        columns[index] = column
    return columns


def _preview(items: Sequence[str]) -> str:
    return preview(items) if items else "none"
