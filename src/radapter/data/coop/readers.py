"""Reading the CoOp datasets from disk, in CoOp's layouts or in the R-Adapter authors' one.

CoOp's layouts (``$DATA/<folder>/``, see :mod:`radapter.data.coop.registry`):

* ``split_zhou_<Name>.json`` — ``{"train"|"val"|"test": [[relative path, label, classname], ...]}``, paths
  relative to ``<folder>/<image_dir>``; read natively (nine datasets);
* FGVC-Aircraft — ``variants.txt`` (one class per line, label = line index) and
  ``images_variant_{train,val,test}.txt`` (``<image id> <class name with spaces>``), images ``images/<id>.jpg``;
* ImageNet — ``images/{train,val}/<wnid>/*`` and ``classnames.txt`` (``<wnid> <name>`` lines); labels follow
  the sorted train folders; the val folder is the test set and, as in CoOp, also the val set.

The authors' layout (``$DATA/few_shot/<name>/{train,val,test}/<class folder>/``, read by their
``FewShotDataset`` as torchvision ImageFolders; ImageNet is ``few_shot/ILSVRC2012/{train,val}`` with val as test):
labels follow the sorted train folders, class names are the folder names with CoOp's fixes.

A listed image that is missing is an error naming it and the split file. The check lists each image folder
once (one ``scandir`` per folder, not one ``stat`` per image), so it costs little even for Food101.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from radapter.data.base import DatasetLayoutError, preview, render_tree
from radapter.data.class_lists import imagenet_classnames, imagenet_wnids
from radapter.data.coop.base import SPLITS, CoOpData, Datum, classnames_from_items
from radapter.data.coop.registry import CoOpDatasetSpec, fix_folder_classname, get_coop_dataset
from radapter.data.folders import list_class_folders, list_image_files
from radapter.data.images import is_image_file

__all__ = [
    "check_images_exist",
    "load_coop_dataset",
    "read_authors_layout",
    "read_fgvc_aircraft",
    "read_imagenet",
    "read_split_json",
    "write_imagenet_classnames",
]


def _layout_of(spec: CoOpDatasetSpec) -> str:
    if spec.layout == "imagenet":
        children = [
            ("images/", ["train/   (1000 folders n01440764, ...)", "val/     (same wnid folders)"]),
            "classnames.txt",
        ]
    elif spec.layout == "fgvc_aircraft":
        children = [("images/", ["<id>.jpg", "..."]), "variants.txt", "images_variant_{train,val,test}.txt"]
    else:
        image_dir = f"{spec.image_dir}/" if spec.image_dir else "<images as listed in the split file>"
        children = [(image_dir, ["..."]), f"{spec.split_file}"]
    return render_tree(spec.folder, children)


def check_images_exist(image_root: str, items: Sequence[Datum], source: str | os.PathLike) -> None:
    """Checks that every item's image exists, listing each folder once.

    Raises:
        DatasetLayoutError: Names ``source`` (the split file), the missing images (the first few) and their count.
    """
    listed: dict[str, set[str] | None] = {}
    missing: list[str] = []
    for item in items:
        path = os.path.join(image_root, *item.path.split("/"))
        folder, name = os.path.split(path)
        if folder not in listed:
            try:
                with os.scandir(folder) as entries:
                    listed[folder] = {e.name for e in entries}
            except (FileNotFoundError, NotADirectoryError):
                listed[folder] = None
        names = listed[folder]
        if names is None or name not in names:
            missing.append(path)
    if missing:
        raise DatasetLayoutError(
            source,
            f"{len(missing)} of the {len(items)} images it lists are missing under {image_root}: {preview(missing, 3)}",
        )


def _read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DatasetLayoutError(path, f"not valid JSON ({e})") from e


def read_split_json(path: str | os.PathLike, image_root: str | os.PathLike) -> dict[str, list[Datum]]:
    """Reads a ``split_zhou_*.json`` file.

    Args:
        path: The split file.
        image_root: Folder its paths are relative to (not checked here; see :func:`check_images_exist`).

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}``.

    Raises:
        DatasetLayoutError: A missing key or an entry that is not ``[path, label, classname]``.
    """
    path = os.fspath(path)
    data = _read_json(path)
    if not isinstance(data, dict) or any(s not in data for s in SPLITS):
        found = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise DatasetLayoutError(path, f"expected an object with keys 'train', 'val' and 'test', found {found}")
    out: dict[str, list[Datum]] = {}
    for split in SPLITS:
        entries = data[split]
        if not isinstance(entries, list):
            raise DatasetLayoutError(path, f"{split!r} must be a list of [path, label, classname], not {entries!r:.60}")
        items = []
        for index, entry in enumerate(entries):
            ok = isinstance(entry, (list, tuple)) and len(entry) == 3
            if ok:
                rel, label, name = entry
                ok = isinstance(rel, str) and isinstance(label, int) and not isinstance(label, bool) and label >= 0
                ok = ok and isinstance(name, str)
            if not ok:
                raise DatasetLayoutError(
                    path, f"{split}[{index}] = {entry!r:.80}: expected [relative path, label >= 0, classname]"
                )
            items.append(Datum(rel.replace(os.sep, "/"), label, name))
        out[split] = items
    return out


def read_fgvc_aircraft(dataset_dir: str | os.PathLike) -> dict[str, list[Datum]]:
    """Reads FGVC-Aircraft's ``variants.txt`` and ``images_variant_{train,val,test}.txt`` as CoOp does.

    Raises:
        DatasetLayoutError: A missing file, or a line whose variant is not in ``variants.txt``.
    """
    dataset_dir = os.fspath(dataset_dir)
    variants_file = os.path.join(dataset_dir, "variants.txt")
    if not os.path.isfile(variants_file):
        raise DatasetLayoutError(variants_file, "missing", _layout_of(get_coop_dataset("fgvc_aircraft")))
    with open(variants_file, encoding="utf-8") as f:
        variants = [line.strip() for line in f if line.strip()]
    label_of = {name: label for label, name in enumerate(variants)}
    out: dict[str, list[Datum]] = {}
    for split in SPLITS:
        list_file = os.path.join(dataset_dir, f"images_variant_{split}.txt")
        if not os.path.isfile(list_file):
            raise DatasetLayoutError(list_file, "missing", _layout_of(get_coop_dataset("fgvc_aircraft")))
        items = []
        with open(list_file, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                image_id, _, variant = line.strip().partition(" ")
                if variant not in label_of:
                    raise DatasetLayoutError(
                        list_file, f"line {number}: variant {variant!r} is not in variants.txt ({line.strip()!r})"
                    )
                items.append(Datum(f"{image_id}.jpg", label_of[variant], variant))
        out[split] = items
    return out


def _read_wnid_names(path: str) -> dict[str, str]:
    names: dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            wnid, _, name = line.strip().partition(" ")
            if not name.strip():
                raise DatasetLayoutError(path, f"line {number} {line.strip()!r} is not '<wnid> <class name>'")
            names[wnid] = name.strip()
    return names


def write_imagenet_classnames(path: str | os.PathLike) -> None:
    """Writes CoOp's ImageNet ``classnames.txt`` (``<wnid> <name>``) from radapter's shipped lists.

    CoOp's file holds the names of CLIP's ImageNet prompt-engineering notebook, which are the names open_clip
    ships as ``IMAGENET_CLASSNAMES`` (used by :func:`radapter.data.imagenet_classnames`).
    """
    lines = [f"{w} {n}" for w, n in zip(imagenet_wnids(), imagenet_classnames())]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def _list_folder_images(folder: str) -> list[str]:
    with os.scandir(folder) as entries:
        return sorted(e.name for e in entries if not e.name.startswith(".") and e.is_file() and is_image_file(e.name))


def read_imagenet(dataset_dir: str | os.PathLike) -> tuple[dict[str, list[Datum]], str]:
    """Reads CoOp's ImageNet layout; paths are relative to ``<dataset_dir>/images``.

    Returns:
        ``({"train", "val", "test"}, image_root)``; ``val`` is the test set (CoOp: "evaluate the last-step model").

    Raises:
        DatasetLayoutError: A missing folder or ``classnames.txt``, or a wnid it does not name.
    """
    dataset_dir = os.fspath(dataset_dir)
    spec = get_coop_dataset("imagenet")
    image_root = os.path.join(dataset_dir, spec.image_dir)
    names_file = os.path.join(dataset_dir, "classnames.txt")
    for needed in (os.path.join(image_root, "train"), os.path.join(image_root, "val")):
        if not os.path.isdir(needed):
            raise DatasetLayoutError(needed, "missing", _layout_of(spec))
    if not os.path.isfile(names_file):
        raise DatasetLayoutError(
            names_file,
            "missing (CoOp's DATASETS.md links it; radapter.data.coop.write_imagenet_classnames writes the same names)",
            _layout_of(spec),
        )
    names = _read_wnid_names(names_file)
    folders = list_class_folders(os.path.join(image_root, "train"))
    unnamed = [w for w in folders if w not in names]
    if unnamed:
        raise DatasetLayoutError(names_file, f"names no class for folders {preview(unnamed)} of images/train")
    label_of = {w: i for i, w in enumerate(folders)}
    out: dict[str, list[Datum]] = {}
    for split, folder in (("train", "train"), ("test", "val")):
        split_dir = os.path.join(image_root, folder)
        present = list_class_folders(split_dir)
        unknown = [w for w in present if w not in label_of]
        if unknown or not present:
            problem = f"class folders {preview(unknown)} are not in images/train" if unknown else "has no class folders"
            raise DatasetLayoutError(split_dir, problem, _layout_of(spec))
        out[split] = [
            Datum(f"{folder}/{w}/{name}", label_of[w], names[w])
            for w in present
            for name in _list_folder_images(os.path.join(split_dir, w))
        ]
    out["val"] = list(out["test"])
    return out, image_root


def read_authors_layout(spec: CoOpDatasetSpec, root: str | os.PathLike) -> tuple[dict[str, list[Datum]], str]:
    """Reads ``<root>/few_shot/<authors_folder>/{train,val,test}/<class>/`` (ImageNet: ``{train,val}``, val = test).

    Labels follow the sorted class folders of ``train`` (torchvision's ImageFolder order, as the authors' code);
    names are the folder names with CoOp's renames; ImageNet's wnid folders are named from ``classnames.txt``
    in that folder if present, else from radapter's shipped CLIP names (what the authors' code uses).

    Returns:
        ``(splits, image_root)`` with paths relative to ``image_root = <root>/few_shot/<authors_folder>``.
    """
    image_root = os.path.join(os.fspath(root), "few_shot", spec.authors_folder)
    is_imagenet = spec.name == "imagenet"
    folders_of_split = {"train": "train", "val": "val", "test": "val" if is_imagenet else "test"}
    layout = render_tree(
        f"few_shot/{spec.authors_folder}",
        [(f"{d}/", ["<class folder>/", "..."]) for d in sorted(set(folders_of_split.values()), key=SPLITS.index)],
    )
    for d in set(folders_of_split.values()):
        if not os.path.isdir(os.path.join(image_root, d)):
            raise DatasetLayoutError(os.path.join(image_root, d), "missing", layout)
    folders = [f for f in list_class_folders(os.path.join(image_root, "train")) if f not in spec.ignored_folders]
    if is_imagenet:
        names_file = os.path.join(image_root, "classnames.txt")
        if os.path.isfile(names_file):
            wnid_names = _read_wnid_names(names_file)
        else:
            wnid_names = dict(zip(imagenet_wnids(), imagenet_classnames()))
        unnamed = [f for f in folders if f not in wnid_names]
        if unnamed:
            raise DatasetLayoutError(os.path.join(image_root, "train"), f"folders {preview(unnamed)} are not wnids")
        names = [wnid_names[f] for f in folders]
    else:
        names = [fix_folder_classname(spec, f) for f in folders]
    label_of = {f: i for i, f in enumerate(folders)}
    out: dict[str, list[Datum]] = {}
    for split, d in folders_of_split.items():
        split_dir = os.path.join(image_root, d)
        present = [f for f in list_class_folders(split_dir) if f not in spec.ignored_folders]
        unknown = [f for f in present if f not in label_of]
        if unknown:
            raise DatasetLayoutError(split_dir, f"class folders {preview(unknown)} are not in train/", layout)
        items = []
        for f in present:
            for path in list_image_files(os.path.join(split_dir, f)):
                rel = os.path.relpath(path, image_root).replace(os.sep, "/")
                items.append(Datum(rel, label_of[f], names[label_of[f]]))
        out[split] = items
    return out, image_root


def load_coop_dataset(
    name: str, root: str | os.PathLike, *, layout: str = "coop", check_files: bool = True
) -> CoOpData:
    """Loads one of the 11 CoOp datasets.

    Args:
        name: Registry key, CoOp name or folder (``"dtd"``, ``"DescribableTextures"``, ``"caltech-101"``).
        root: ``$DATA``: the folder holding the datasets' folders (``layout="coop"``) or ``few_shot/``
            (``layout="authors"``, the authors' ``--data-location``).
        layout: ``"coop"`` (CoOp's files, default) or ``"authors"`` (the R-Adapter release's ImageFolders).
        check_files: Check that every image a split file lists exists (one directory listing per folder).

    Returns:
        The splits and class names; ``str()`` / :meth:`CoOpData.summary` report the counts (not asserted).

    Raises:
        KeyError: Unknown dataset.
        DatasetLayoutError: Missing files, malformed split files, missing images (naming image and split file).
    """
    spec = get_coop_dataset(name)
    root = os.fspath(root)
    if layout == "authors":
        splits, image_root = read_authors_layout(spec, root)
        source = image_root
    elif layout == "coop":
        dataset_dir = os.path.join(root, spec.folder)
        if not os.path.isdir(dataset_dir):
            raise DatasetLayoutError(dataset_dir, f"missing: {spec.coop_name} is expected here", _layout_of(spec))
        if spec.layout == "imagenet":
            splits, image_root = read_imagenet(dataset_dir)
            source = os.path.join(dataset_dir, "classnames.txt")
        elif spec.layout == "fgvc_aircraft":
            splits = read_fgvc_aircraft(dataset_dir)
            image_root, source = os.path.join(dataset_dir, spec.image_dir), dataset_dir
        else:
            source = os.path.join(dataset_dir, spec.split_file)
            if not os.path.isfile(source):
                raise DatasetLayoutError(
                    source, "missing (download it from the link in CoOp's DATASETS.md)", _layout_of(spec)
                )
            image_root = os.path.join(dataset_dir, spec.image_dir) if spec.image_dir else dataset_dir
            splits = read_split_json(source, image_root)
        if check_files and spec.layout != "imagenet":  # ImageNet's items were listed from disk
            for split in SPLITS:
                listed_in = source
                if spec.layout == "fgvc_aircraft":
                    listed_in = os.path.join(dataset_dir, f"images_variant_{split}.txt")
                check_images_exist(image_root, splits[split], listed_in)
    else:
        raise ValueError(f"layout must be 'coop' or 'authors', got {layout!r}")
    classnames = classnames_from_items(splits, source)
    return CoOpData(
        name=spec.name,
        image_root=image_root,
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        classnames=classnames,
        source=source,
        published=spec.published if layout == "coop" else None,
    )
