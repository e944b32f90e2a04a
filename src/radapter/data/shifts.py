"""ImageNet and its distribution shifts, read from their standard folder layouts.

The evaluation protocol of WiSE-FT / FLYP / R-Adapter (``r-adapter.md`` §6): a model with a
1000-way ImageNet head is evaluated on

==================  ==========================================  ==========================================
set                 folders                                     label space and logits
==================  ==========================================  ==========================================
ImageNet (ID)       1000 wnid folders (``n01440764``, ...),     the 1000 classes; logits as they are
                    or the original flat val folder
ImageNet-V2         ``0`` ... ``999`` (integer labels)          the 1000 classes; logits as they are
                    (also its threshold0.7 / top-images
                    variants)
ImageNet-Sketch     1000 wnid folders                           the 1000 classes; logits as they are
ImageNet-A          its 200 wnid folders                        200 classes; the head's 200 columns
ImageNet-R          its 200 wnid folders                        200 classes; the head's 200 columns
ObjectNet           the 113 folders that map to ImageNet        113 classes; logit = max over the mapped
                    (other folders are ignored)                 ImageNet columns; 2-pixel border crop
==================  ==========================================  ==========================================

Every :class:`EvalSet` returns labels in its own label space and maps the head's logits into it
with :meth:`EvalSet.project_logits`, so for every set ``accuracy = argmax(project_logits(logits)) ==
label``. "Logits as they are" assumes a head in ImageNet order; given the head's class names (or
folders), each set checks that the head holds the 1000 ImageNet classes and reads the right column of
each class whatever the head's order (see :func:`build_imagenet_eval_set`). Nothing is downloaded: a
missing or incomplete folder is a :class:`~radapter.data.base.DatasetLayoutError` that lists what is
missing and draws the layout; class folders that are not classes of the set are logged as warnings.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import Dataset

from radapter.data.base import DatasetLayoutError, ImageSampleDataset, preview, render_tree
from radapter.data.class_lists import (
    imagenet_a_wnids,
    imagenet_classnames,
    imagenet_r_wnids,
    imagenet_wnids,
    match_imagenet_classes,
    objectnet_classes,
)
from radapter.data.errors import DataError
from radapter.data.folders import ImageFolderDataset, list_class_folders
from radapter.data.imagenet_val import FlatImageNetVal, is_flat_val
from radapter.data.transforms import BorderCrop

__all__ = [
    "IMAGENET_EVAL_SETS",
    "IMAGENET_KINDS",
    "IMAGENET_SUITE_CANDIDATES",
    "IMAGENET_SUITE_FOLDERS",
    "EvalSet",
    "build_imagenet_eval_set",
    "build_imagenet_suite",
    "find_imagenet_set",
    "imagenet_eval_set_key",
]


@dataclass
class EvalSet:
    """A dataset to evaluate a classifier on, with the map from the head's classes to its own.

    Attributes:
        name: Name used in results (``"<name>:top1"``), e.g. ``"ImageNetA"``.
        dataset: Yields ``(image, label)`` with ``label`` in this set's label space.
        classnames: Names of this set's label space, indexed by label.
        ood: Counts towards "avg OOD".
        class_map: For each label of this set, the head's columns that score it (one column: a subset,
            several: the max over them, as ObjectNet). ``None``: the set uses the head's classes as they are.
        num_head_classes: Width of the head the logits come from, checked by :meth:`project_logits`;
            ``None`` skips the check (it is then the number of classes when ``class_map`` is ``None``).
    """

    name: str
    dataset: Dataset
    classnames: list[str]
    ood: bool = True
    class_map: list[list[int]] | None = None
    num_head_classes: int | None = None
    _index_cache: dict[Any, torch.Tensor] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.classnames = list(self.classnames)
        if self.class_map is None:
            if self.num_head_classes is None:
                self.num_head_classes = len(self.classnames)
            elif self.num_head_classes != len(self.classnames):
                raise DataError(
                    f"eval set {self.name!r}: {len(self.classnames)} class names but num_head_classes="
                    f"{self.num_head_classes} and no class_map to relate them"
                )
            return
        self.class_map = [[int(c) for c in group] for group in self.class_map]
        if len(self.class_map) != len(self.classnames):
            raise DataError(
                f"eval set {self.name!r}: class_map has {len(self.class_map)} entries for {len(self.classnames)} classes"
            )
        for label, group in enumerate(self.class_map):
            if not group:
                raise DataError(f"eval set {self.name!r}: class {label} ({self.classnames[label]!r}) maps to no column")
            bad = [c for c in group if c < 0 or (self.num_head_classes is not None and c >= self.num_head_classes)]
            if bad:
                raise DataError(
                    f"eval set {self.name!r}: class {label} maps to columns {bad} outside a head of "
                    f"{self.num_head_classes} classes"
                )

    @property
    def head_columns(self) -> list[int]:
        """The head's columns this set reads, sorted (all of them when there is no ``class_map``)."""
        if self.class_map is None:
            return list(range(len(self.classnames)))
        return sorted({c for group in self.class_map for c in group})

    def project_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """Maps logits over the head's classes to logits over this set's classes.

        Args:
            logits: ``(..., num_head_classes)`` scores from the classification head.

        Returns:
            ``(..., len(classnames))``: the same tensor (same label space), the subset of columns
            (ImageNet-A/R, user subsets), or per class the max over its mapped columns (ObjectNet).

        Raises:
            ValueError: The logits' last dimension is not the head width this set was built for.
        """
        logits = torch.as_tensor(logits)
        width = logits.shape[-1] if logits.ndim else 0
        if self.num_head_classes is not None and width != self.num_head_classes:
            raise DataError(
                f"eval set {self.name!r} expects logits over {self.num_head_classes} head classes, got "
                f"{width} (shape {tuple(logits.shape)}): the head and the data disagree on the classes"
            )
        if self.class_map is None:
            return logits
        index = self._index(logits.device)
        if index.ndim == 1:
            return logits.index_select(-1, index)
        # Groups are padded by repeating their first column, which leaves each max unchanged and
        # lets one gather + amax handle groups of different sizes.
        return logits[..., index].amax(dim=-1)

    def predictions(self, logits: torch.Tensor) -> torch.Tensor:
        """Predicted labels in this set's label space: ``argmax(project_logits(logits))``."""
        return self.project_logits(logits).argmax(dim=-1)

    def _index(self, device: torch.device) -> torch.Tensor:
        if device not in self._index_cache:
            assert self.class_map is not None
            width = max(len(group) for group in self.class_map)
            if width == 1:
                index = torch.tensor([group[0] for group in self.class_map], dtype=torch.long)
            else:
                index = torch.tensor([g + [g[0]] * (width - len(g)) for g in self.class_map], dtype=torch.long)
            self._index_cache[device] = index.to(device)
        return self._index_cache[device]

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]


@dataclass(frozen=True)
class _Spec:
    key: str
    name: str  # WiSE-FT's name, used as the results key ("ImageNetA:top1")
    title: str  # for people, in messages
    ood: bool
    folders: tuple[str, ...]  # where it sits under a data location, in search order (WiSE-FT's names included)
    file_example: str
    note: str


_V2_NOTE = "1000 folders named 0 ... 999, the ImageNet label of their images"
_SPECS: dict[str, _Spec] = {
    s.key: s
    for s in (
        _Spec("imagenet", "ImageNet", "ImageNet val", False,
              ("imagenet/val_in_folder", "imagenet/val", "val_in_folder", "ILSVRC2012_img_val",
               "imagenet/ILSVRC2012_img_val", "ILSVRC/Data/CLS-LOC/val"),
              "ILSVRC2012_val_00000293.JPEG",
              "1000 folders named by WordNet ID, 50 images each; or the original flat ILSVRC2012_img_val/ with the "
              "devkit's ILSVRC2012_validation_ground_truth.txt or Kaggle's LOC_val_solution.csv"),
        _Spec("imagenet-v2", "ImageNetV2", "ImageNet-V2 (matched frequency)", True,
              ("imagenetv2-matched-frequency-format-val", "ImageNetV2-matched-frequency"), "<image>.jpeg", _V2_NOTE),
        _Spec("imagenet-sketch", "ImageNetSketch", "ImageNet-Sketch", True, ("sketch", "imagenet-sketch"),
              "sketch_0.JPEG", "1000 folders named by WordNet ID"),
        _Spec("imagenet-a", "ImageNetA", "ImageNet-A", True, ("imagenet-a",), "<image>.jpg",
              "200 folders named by WordNet ID (radapter/data/resources/imagenet_a_wnids.txt)"),
        _Spec("imagenet-r", "ImageNetR", "ImageNet-R", True, ("imagenet-r",), "<image>.jpg",
              "200 folders named by WordNet ID (radapter/data/resources/imagenet_r_wnids.txt)"),
        _Spec("objectnet", "ObjectNet", "ObjectNet", True, ("objectnet-1.0/images",), "<image>.png",
              "the 113 class folders that map to ImageNet (radapter/data/resources/objectnet_to_imagenet.json); "
              "its other folders are ignored"),
        _Spec("imagenet-v2-threshold0.7", "ImageNetV2Threshold", "ImageNet-V2 (threshold 0.7)", True,
              ("imagenetv2-threshold0.7-format-val", "ImageNetV2-threshold-0.7", "ImageNetV2-threshold0.7"),
              "<image>.jpeg", _V2_NOTE),
        _Spec("imagenet-v2-top-images", "ImageNetV2TopImages", "ImageNet-V2 (top images)", True,
              ("imagenetv2-top-images-format-val", "ImageNetV2-top-images"), "<image>.jpeg", _V2_NOTE),
    )
}  # fmt: skip

#: Keys of the ImageNet evaluation suite of the paper (WiSE-FT / FLYP / R-Adapter), ID first.
IMAGENET_EVAL_SETS: tuple[str, ...] = tuple(_SPECS)[:6]
#: Every ImageNet-family kind: the suite and ImageNet-V2's two other variants.
IMAGENET_KINDS: tuple[str, ...] = tuple(_SPECS)
#: The conventional folder of each set under one data folder (the WiSE-FT / FLYP ``--data-location``).
IMAGENET_SUITE_FOLDERS: dict[str, str] = {
    key: ("imagenet/val" if key == "imagenet" else spec.folders[0]) for key, spec in _SPECS.items()
}
#: Every folder looked for, in order (WiSE-FT's ``imagenet/val_in_folder`` and ``ImageNetV2-matched-frequency``...).
IMAGENET_SUITE_CANDIDATES: dict[str, tuple[str, ...]] = {key: spec.folders for key, spec in _SPECS.items()}

_ALIASES = {"".join(ch for ch in key if ch.isalnum()): key for key in _SPECS}
_ALIASES |= {spec.name.lower(): key for key, spec in _SPECS.items()}
_ALIASES |= {
    "imagenetval": "imagenet",
    "imagenet1k": "imagenet",
    "sketch": "imagenet-sketch",
    "imagenetv2matchedfrequency": "imagenet-v2",
    "imagenetv2threshold": "imagenet-v2-threshold0.7",
    "imagenetv2threshold07": "imagenet-v2-threshold0.7",
}

log = logging.getLogger("radapter")


def imagenet_eval_set_key(name: str) -> str:
    """Canonical key of an ImageNet eval set: ``"ImageNetA"``, ``"imagenet_a"`` and ``"imagenet-a"`` all give ``"imagenet-a"``.

    Raises:
        ValueError: Not one of the ImageNet-family sets (the message lists them).
    """
    squashed = "".join(ch for ch in name.lower() if ch.isalnum())
    if squashed not in _ALIASES:
        raise DataError(f"unknown ImageNet eval set {name!r}; expected one of {', '.join(IMAGENET_KINDS)}")
    return _ALIASES[squashed]


def _layout(spec: _Spec, folders: Sequence[str]) -> str:
    root = os.path.basename(spec.folders[0])
    return render_tree(
        root,
        [
            (f"{folders[0]}/", [spec.file_example, "..."]),
            (f"{folders[1]}/", ["..."]),
            f"...   ({spec.note})",
        ],
    )


def _label_space(key: str) -> tuple[list[str], list[str], list[list[int]] | None]:
    """Class folders (label order), class names and class map (into ImageNet's order) of one set."""
    names = list(imagenet_classnames())
    if key in ("imagenet", "imagenet-sketch"):
        return list(imagenet_wnids()), names, None
    if key.startswith("imagenet-v2"):
        # Folder "10" is label 10: the folders must be listed numerically, not sorted as strings.
        return [str(i) for i in range(1000)], names, None
    if key in ("imagenet-a", "imagenet-r"):
        subset = imagenet_a_wnids() if key == "imagenet-a" else imagenet_r_wnids()
        position = {wnid: i for i, wnid in enumerate(imagenet_wnids())}
        columns = [position[wnid] for wnid in subset]
        return list(subset), [names[c] for c in columns], [[c] for c in columns]
    classes = objectnet_classes()
    # Lower-cased ObjectNet names, as WiSE-FT names them.
    return [c.folder for c in classes], [c.name.lower() for c in classes], [list(c.imagenet_indices) for c in classes]


def _report_unknown_folders(spec: _Spec, root: str, folders: Sequence[str]) -> None:
    """Logs the folders of ``root`` that are not classes of the set (they are not evaluated)."""
    try:
        unknown = sorted(set(list_class_folders(root)) - set(folders))
    except OSError:
        return
    if not unknown:
        return
    count = f"{len(unknown)} folder{'s' if len(unknown) != 1 else ''}"
    if spec.key == "objectnet":
        # ObjectNet has 313 classes; evaluating only the 113 that map to ImageNet is the protocol.
        log.info("%s at %s: %s that do not map to ImageNet are not evaluated", spec.title, root, count)
        return
    log.warning(
        "%s at %s: %s are not %s classes and are not evaluated: %s",
        spec.title,
        root,
        count,
        spec.title,
        preview(unknown),
    )


def build_imagenet_eval_set(
    name: str,
    root: str | os.PathLike,
    transform: Callable[[Any], Any] | None = None,
    *,
    skip_corrupt: bool = False,
    ood: bool | None = None,
    set_name: str | None = None,
    progress: bool = True,
    head_classnames: Sequence[str] | None = None,
    head_folders: Sequence[str] | None = None,
    labels_file: str | os.PathLike | None = None,
) -> EvalSet:
    """Builds one ImageNet-family set from its folder, for a head over the 1000 ImageNet classes.

    Example:
        >>> s = build_imagenet_eval_set("imagenet-a", "/data/imagenet-a", eval_transform())  # doctest: +SKIP
        >>> correct = (s.predictions(model(images)) == labels).sum()  # doctest: +SKIP

    The head's classes may be in any order (a head built from an ImageFolder follows its sorted folders):
    with ``head_classnames`` / ``head_folders`` each ImageNet class is found among the head's columns by
    :func:`~radapter.data.class_lists.match_imagenet_classes`, and the set reads those columns. Without
    them the head is taken to be in ImageNet order (``n01440764`` first).

    Args:
        name: ``imagenet``, ``imagenet-v2``, ``imagenet-sketch``, ``imagenet-a``, ``imagenet-r``, ``objectnet``,
            ``imagenet-v2-threshold0.7`` or ``imagenet-v2-top-images`` (WiSE-FT names such as ``ImageNetA`` work).
        root: The folder holding the class folders (for ObjectNet, ``objectnet-1.0/images``); for ImageNet val
            also the original flat folder of ``ILSVRC2012_val_*.JPEG`` (see :mod:`radapter.data.imagenet_val`).
        transform: Eval transform of the model; ObjectNet's border crop is put in front of it.
        skip_corrupt: Drop unreadable images now (see ``dataset.skipped``) instead of failing when read.
        ood: Override whether the set counts as OOD (ImageNet val is ID, the others OOD).
        set_name: Name in results; default WiSE-FT's (``ImageNet``, ``ImageNetV2``, ``ImageNetSketch``,
            ``ImageNetA``, ``ImageNetR``, ``ObjectNet``; ``ImageNetV2Threshold``, ``ImageNetV2TopImages``).
        progress: Show a progress bar during the ``skip_corrupt`` scan.
        head_classnames: Class names of the head, by column.
        head_folders: Training folder of each head column (WordNet IDs make the match exact).
        labels_file: Flat ImageNet val only: the devkit ground truth or ``LOC_val_solution.csv``.

    Returns:
        The set. Its labels are in its own label space; for ImageNet, V2 and Sketch that space is the head's
        (labels follow the head's order), for A, R and ObjectNet its ``class_map`` names the head's columns.

    Raises:
        ValueError: Unknown ``name``, or a head that is not the 1000 ImageNet classes.
        DatasetLayoutError: The folder is missing, class folders are missing or empty, or flat val labels
            cannot be found or read.
    """
    key = imagenet_eval_set_key(name)
    spec = _SPECS[key]
    root = os.fspath(root)
    label = set_name or spec.name
    columns = None
    if head_classnames is not None or head_folders is not None:
        names = list(head_classnames) if head_classnames is not None else [str(f) for f in head_folders or ()]
        columns = match_imagenet_classes(names, head_folders, context=f"eval set {label!r} ({spec.title}): ")
        if columns == list(range(1000)):
            columns = None  # already in ImageNet order
        else:
            log.info("eval set %r: the head's classes are ImageNet's in another order; its columns are remapped", label)
    folders, classnames, class_map = _label_space(key)
    if key == "objectnet":
        transform = _prepend(BorderCrop(2), transform)
    dataset: ImageSampleDataset
    if key == "imagenet" and (labels_file is not None or is_flat_val(root)):
        dataset = FlatImageNetVal(root, transform, labels_file)
    else:
        dataset = ImageFolderDataset(
            root,
            transform=transform,
            # Identity names: the real ones are set below; a classnames.txt in a benchmark folder is not read.
            classnames={folder: folder for folder in folders},
            class_folders=folders,
            expected_layout=_layout(spec, folders),
            description=spec.title,
        )
        dataset.classnames = list(classnames)
        _report_unknown_folders(spec, root, folders)
    if columns is not None:
        if class_map is None:
            # The set's label space becomes the head's: ImageNet class i is head column columns[i].
            dataset.relabel(columns, [str(n) for n in (head_classnames or names)])
            classnames = list(dataset.classnames or [])
        else:
            class_map = [[columns[c] for c in group] for group in class_map]
    if skip_corrupt:
        dataset.skip_corrupt_images(progress=progress)
    return EvalSet(
        name=label,
        dataset=dataset,
        classnames=classnames,
        ood=spec.ood if ood is None else ood,
        class_map=class_map,
        num_head_classes=1000,
    )


def find_imagenet_set(location: str | os.PathLike, name: str) -> str:
    """The folder of one ImageNet-family set under a data location (the first of its conventional names).

    Raises:
        DatasetLayoutError: None of the folders exists; the message lists every path tried.
    """
    key = imagenet_eval_set_key(name)
    location = os.fspath(location)
    tried = [os.path.join(location, folder) for folder in _SPECS[key].folders]
    for path in tried:
        if os.path.isdir(path):
            return path
    raise DatasetLayoutError(
        location,
        f"{_SPECS[key].title} not found (nothing is downloaded); looked for {', '.join(tried)}",
        _layout(_SPECS[key], _label_space(key)[0]),
    )


def build_imagenet_suite(
    location: str | os.PathLike,
    transform: Callable[[Any], Any] | None = None,
    names: Sequence[str] = IMAGENET_EVAL_SETS,
    *,
    skip_corrupt: bool = False,
    progress: bool = True,
    head_classnames: Sequence[str] | None = None,
    head_folders: Sequence[str] | None = None,
) -> list[EvalSet]:
    """Builds several ImageNet sets from one data folder laid out as WiSE-FT / FLYP expect.

    Each set is looked for at ``location/<folder>`` for each folder of :data:`IMAGENET_SUITE_CANDIDATES`,
    first found wins: ``imagenet/val_in_folder`` or ``imagenet/val`` (or a flat ``ILSVRC2012_img_val``),
    ``imagenetv2-matched-frequency-format-val`` or ``ImageNetV2-matched-frequency``, ``sketch``,
    ``imagenet-a``, ``imagenet-r``, ``objectnet-1.0/images``.

    Args:
        location: The data folder.
        transform: Eval transform of the model.
        names: Which sets to build, in order (default: the paper's six).
        skip_corrupt: Drop unreadable images instead of failing when read.
        progress: Show progress bars during ``skip_corrupt`` scans.
        head_classnames: Class names of the head, by column (see :func:`build_imagenet_eval_set`).
        head_folders: Training folder of each head column.

    Returns:
        One :class:`EvalSet` per name.
    """
    return [
        build_imagenet_eval_set(
            name,
            find_imagenet_set(location, name),
            transform,
            skip_corrupt=skip_corrupt,
            progress=progress,
            head_classnames=head_classnames,
            head_folders=head_folders,
        )
        for name in names
    ]


class _Compose:
    """Two-step composition that stays picklable (for DataLoader workers)."""

    def __init__(self, first: Callable[[Any], Any], then: Callable[[Any], Any]):
        self.first, self.then = first, then

    def __call__(self, image: Any) -> Any:
        return self.then(self.first(image))

    def __repr__(self) -> str:
        return f"{self.first!r} -> {self.then!r}"


def _prepend(first: Callable[[Any], Any], transform: Callable[[Any], Any] | None) -> Callable[[Any], Any]:
    return first if transform is None else _Compose(first, transform)
