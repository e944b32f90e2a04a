"""Tiny fake trees in every layout the CoOp readers accept (tests build them in tmp_path; nothing is downloaded).

A plain module (not a conftest): the project's tests import ``tests/conftest.py`` as ``conftest``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from tiny_images import png_bytes

from radapter.data.coop.registry import CoOpDatasetSpec

SPLIT_NAMES = ("train", "val", "test")
_PNG = png_bytes((6, 6))


def _write(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_PNG)


def write_split_json_tree(
    root: Path,
    spec: CoOpDatasetSpec,
    folders: Sequence[str],
    counts: tuple[int, int, int] = (5, 3, 2),
    names: Sequence[str] | None = None,
) -> dict[str, list[list]]:
    """Writes ``root/<folder>/<image_dir>/<class folder>/<split>_NNN.jpg`` and ``split_zhou_*.json``.

    Args:
        folders: Class folders, label = position.
        counts: Images per class in train, val, test.
        names: Class names written into the split file (default: the folder names).

    Returns:
        The split file's content.
    """
    dataset_dir = root / spec.folder
    image_root = dataset_dir / spec.image_dir if spec.image_dir else dataset_dir
    split = {s: [] for s in SPLIT_NAMES}
    for label, folder in enumerate(folders):
        name = names[label] if names is not None else folder
        for s, n in zip(SPLIT_NAMES, counts):
            for i in range(n):
                rel = f"{folder}/{s}_{i:03d}.jpg"
                _write(image_root / rel)
                split[s].append([rel, label, name])
    (dataset_dir / spec.split_file).write_text(json.dumps(split))
    return split


def write_fgvc_tree(root: Path, variants: Sequence[str], counts: tuple[int, int, int] = (4, 2, 2)) -> Path:
    """FGVC-Aircraft's ``data/`` folder: ``images/<id>.jpg``, ``variants.txt``, ``images_variant_<split>.txt``."""
    dataset_dir = root / "fgvc_aircraft"
    (dataset_dir / "images").mkdir(parents=True)
    (dataset_dir / "variants.txt").write_text("".join(f"{v}\n" for v in variants))
    image_id = 1000000
    for s, n in zip(SPLIT_NAMES, counts):
        lines = []
        for variant in variants:
            for _ in range(n):
                image_id += 1
                _write(dataset_dir / "images" / f"{image_id}.jpg")
                lines.append(f"{image_id} {variant}\n")
        (dataset_dir / f"images_variant_{s}.txt").write_text("".join(lines))
    return dataset_dir


def write_imagenet_tree(root: Path, wnids_names: dict[str, str], train: int = 3, val: int = 2) -> Path:
    """CoOp's ``imagenet/``: ``images/{train,val}/<wnid>/*.JPEG`` and ``classnames.txt``."""
    dataset_dir = root / "imagenet"
    for wnid in wnids_names:
        for i in range(train):
            _write(dataset_dir / "images" / "train" / wnid / f"{wnid}_{i}.JPEG")
        for i in range(val):
            _write(dataset_dir / "images" / "val" / wnid / f"ILSVRC2012_val_{wnid}_{i}.JPEG")
    (dataset_dir / "classnames.txt").write_text("".join(f"{w} {n}\n" for w, n in wnids_names.items()))
    return dataset_dir


def write_authors_tree(root: Path, folder: str, classes: Sequence[str], counts: dict[str, int] | None = None) -> Path:
    """The R-Adapter authors' ``few_shot/<folder>/<split>/<class>/*.jpg`` (ImageFolders)."""
    counts = counts or {"train": 4, "val": 2, "test": 2}
    base = root / "few_shot" / folder
    for s, n in counts.items():
        for c in classes:
            for i in range(n):
                _write(base / s / c / f"{i}.jpg")
    return base
