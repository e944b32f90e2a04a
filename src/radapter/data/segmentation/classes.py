"""Class lists of the open-vocabulary semantic-segmentation benchmarks, and user vocabularies.

A :class:`SegClassList` separates two things CAT-Seg keeps apart for Pascal VOC with background (VOC-20b):

* ``classes`` — the label space of the ground truth (train id ``i`` is ``classes[i]``), what mIoU is computed over;
* ``prompts`` — the names the text encoder sees, one score map each; ``prompt_to_class[j]`` says which class
  prompt ``j`` votes for. For every list but VOC-20b the two coincide (identity map). VOC-20b has 21 classes
  (the 20 VOC objects + ``background``) and 59 prompts: the 20 objects and the 39 other Pascal-Context classes,
  all of which map to ``background`` — CAT-Seg's ``VOCbEvaluator`` sets every prediction ≥ 20 to 20.

A class name may list comma-separated synonyms (``"sofa, couch, lounge"``, as in ADE-847); the text encoder
averages their embeddings (:func:`split_synonyms`).

Shipped lists (``radapter/data/resources/segmentation/``, sources in the resources README), with the ignore
value of their label files as prepared for detectron2:

=================  =======  ==========================================================
name               classes  labels
=================  =======  ==========================================================
``coco_stuff171``  171      PNG, 255 ignore
``ade150``         150      PNG, 255 ignore
``ade847``         847      16-bit TIFF, 65535 ignore
``pc59``           59       PNG, 255 ignore
``pc459``          459      16-bit TIFF, 459 ignore
``voc20``          20       PNG, 255 ignore (background pixels are ignored)
``voc20b``         21       PNG, 255 ignore, train id 20 = background
=================  =======  ==========================================================
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

__all__ = [
    "SEGMENTATION_CLASS_LISTS",
    "SegClassList",
    "load_class_list",
    "segmentation_class_list",
    "split_synonyms",
]

# name -> (resource file, ignore value of the label files, label file extension)
SEGMENTATION_CLASS_LISTS: dict[str, tuple[str, int, str]] = {
    "coco_stuff171": ("coco_stuff171.json", 255, ".png"),
    "ade150": ("ade150.json", 255, ".png"),
    "ade847": ("ade847.json", 65535, ".tif"),
    "pc59": ("pc59.json", 255, ".png"),
    "pc459": ("pc459.json", 459, ".tif"),
    "voc20": ("voc20.json", 255, ".png"),
    "voc20b": ("voc20b.json", 255, ".png"),
}
_ALIASES = {
    "coco-stuff": "coco_stuff171",
    "coco_stuff": "coco_stuff171",
    "coco-stuff-171": "coco_stuff171",
    "cocostuff": "coco_stuff171",
    "ade-150": "ade150",
    "ade-847": "ade847",
    "pc-59": "pc59",
    "pc-459": "pc459",
    "voc-20": "voc20",
    "voc-20b": "voc20b",
}


def split_synonyms(name: str) -> tuple[str, ...]:
    """``"sofa, couch, lounge"`` -> ``("sofa", "couch", "lounge")``; empty parts are dropped."""
    parts = tuple(p.strip() for p in name.split(","))
    parts = tuple(p for p in parts if p)
    if not parts:
        raise ValueError(f"class name {name!r} is empty")
    return parts


@dataclass(frozen=True)
class SegClassList:
    """A segmentation vocabulary.

    Attributes:
        name: Short name (``"ade150"``, or ``"custom"``).
        classes: Names of the ground-truth classes, in train-id order (synonyms comma-separated).
        prompts: Names the text encoder scores (default: ``classes``).
        prompt_to_class: For each prompt, the class it predicts (default: identity).
        ignore_value: Value marking unlabelled pixels in this dataset's label files.
        label_ext: File extension of the label files as prepared for detectron2.
    """

    name: str
    classes: tuple[str, ...]
    prompts: tuple[str, ...] = field(default=())
    prompt_to_class: tuple[int, ...] = field(default=())
    ignore_value: int = 255
    label_ext: str = ".png"

    def __post_init__(self) -> None:
        if not self.classes:
            raise ValueError(f"class list {self.name!r} is empty")
        for c in self.classes:
            split_synonyms(c)
        if not self.prompts:
            object.__setattr__(self, "prompts", tuple(self.classes))
        if not self.prompt_to_class:
            if len(self.prompts) != len(self.classes):
                raise ValueError(f"class list {self.name!r}: prompts differ from classes, give prompt_to_class")
            object.__setattr__(self, "prompt_to_class", tuple(range(len(self.classes))))
        if len(self.prompt_to_class) != len(self.prompts):
            raise ValueError(
                f"class list {self.name!r}: {len(self.prompts)} prompts but {len(self.prompt_to_class)} prompt_to_class"
            )
        bad = [i for i in self.prompt_to_class if not 0 <= i < len(self.classes)]
        if bad:
            raise ValueError(f"class list {self.name!r}: prompt_to_class entries {bad[:5]} are not class indices")
        missing = sorted(set(range(len(self.classes))) - set(self.prompt_to_class))
        if missing:
            raise ValueError(f"class list {self.name!r}: classes {missing[:5]} have no prompt")
        if 0 <= self.ignore_value < len(self.classes):
            raise ValueError(
                f"class list {self.name!r}: ignore value {self.ignore_value} is a class id (0..{len(self.classes) - 1})"
            )

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def identity(self) -> bool:
        """True when every prompt is its own class (all lists but VOC-20b)."""
        return self.prompt_to_class == tuple(range(len(self.classes)))

    def primary_names(self) -> tuple[str, ...]:
        """The first synonym of every class (for tables and legends)."""
        return tuple(split_synonyms(c)[0] for c in self.classes)

    @classmethod
    def from_names(cls, names: Sequence[str], name: str = "custom", ignore_value: int = 255) -> SegClassList:
        """A vocabulary from a list of class names (each may hold comma-separated synonyms)."""
        return cls(name=name, classes=tuple(str(n).strip() for n in names), ignore_value=ignore_value)


def _read(name: str) -> str:
    root = resources.files("radapter.data").joinpath("resources").joinpath("segmentation")
    return root.joinpath(name).read_text(encoding="utf-8")


@cache
def segmentation_class_list(name: str) -> SegClassList:
    """One of the shipped class lists by name (see the module docstring; ``"ADE-150"`` etc. also work)."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in SEGMENTATION_CLASS_LISTS:
        known = ", ".join(SEGMENTATION_CLASS_LISTS)
        raise KeyError(f"unknown segmentation class list {name!r}; shipped: {known} (or give a .txt/.json file)")
    fname, ignore, ext = SEGMENTATION_CLASS_LISTS[key]
    raw = json.loads(_read(fname))
    if isinstance(raw, dict):
        return SegClassList(
            key,
            tuple(raw["classes"]),
            tuple(raw["prompts"]),
            tuple(int(i) for i in raw["prompt_to_class"]),
            ignore,
            ext,
        )
    return SegClassList(key, tuple(str(n).strip() for n in raw), ignore_value=ignore, label_ext=ext)


def load_class_list(spec: str | Sequence[str], ignore_value: int = 255) -> SegClassList:
    """A vocabulary from a shipped name, a file, or a list of names.

    Args:
        spec: A shipped list name (``"ade150"``); a ``.txt`` file with one class per line (synonyms
            comma-separated; blank lines and ``#`` comments skipped); a ``.json`` file with a list of names or an
            object with ``classes`` (and optionally ``prompts`` / ``prompt_to_class``); or a sequence of names.
        ignore_value: Ignore value for a file or list (shipped lists carry their own).
    """
    if not isinstance(spec, str):
        return SegClassList.from_names(list(spec), ignore_value=ignore_value)
    if not (spec.endswith(".txt") or spec.endswith(".json")):
        return segmentation_class_list(spec)
    if not os.path.isfile(spec):
        raise FileNotFoundError(f"{spec}: class list file not found")
    name = os.path.splitext(os.path.basename(spec))[0]
    with open(spec, encoding="utf-8") as f:
        text = f.read()
    if spec.endswith(".txt"):
        lines = [ln.strip() for ln in text.splitlines()]
        return SegClassList.from_names([ln for ln in lines if ln and not ln.startswith("#")], name, ignore_value)
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{spec}: not valid JSON ({e})") from None
    if isinstance(raw, list):
        return SegClassList.from_names(raw, name, ignore_value)
    if isinstance(raw, dict) and "classes" in raw:
        return SegClassList(
            name,
            tuple(raw["classes"]),
            tuple(raw.get("prompts", ())),
            tuple(int(i) for i in raw.get("prompt_to_class", ())),
            int(raw.get("ignore_value", ignore_value)),
        )
    raise ValueError(f"{spec}: expected a JSON list of class names or an object with a 'classes' key")
