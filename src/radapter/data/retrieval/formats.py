"""Readers for the annotation files of image-text retrieval, each returning an :class:`ImageTextSet`.

* **Karpathy split JSON** (``dataset_coco.json``, ``dataset_flickr30k.json``, ``dataset_flickr8k.json``)::

      {"images": [{"filepath": "val2014",                  # COCO only: sub-folder of the image root
                   "filename": "COCO_val2014_000000391895.jpg",
                   "split": "test",                         # train / val / test / restval
                   "sentences": [{"raw": "A man with a red helmet ...", ...}, ...],
                   "cocoid": 391895, "imgid": 0}, ...],     # Flickr: "imgid" only
       "dataset": "coco"}

  Split selection joins names with ``+``: COCO training is ``"train+restval"`` (113,287 images), the test
  sets ``"test"`` (COCO 5,000, Flickr30k 1,000).
* **CLIP_benchmark COCO test** (``coco_test_karpathy.json``, COCO caption format read by torchvision's
  ``CocoCaptions``): ``{"images": [{"id", "file_name"}], "annotations": [{"image_id", "caption"}]}``, with
  ``file_name`` relative to the image root (``val2014/``).
* **CLIP_benchmark Flickr30k test** (``flickr30k_test_karpathy.txt``): a header line, then
  ``1007129816.jpg,The man with pierced ears is wearing glasses and an orange hat.`` — the caption runs to
  the end of the line and may contain commas, so a line is split after the image file name (the first
  ``<image extension>,``), not at every comma.
* **Caption CSV/TSV** (FLYP style, the file ``radapter.data.CsvDataset`` reads for classification): columns
  ``filepath`` and ``title`` plus an optional group key column; names and separator configurable.
* **JSONL** of ``{"image": ..., "caption": ..., "group": ...}``, one pair per line (``group`` optional).

For the two user formats, rows of the same group (the image path when there is no group column) merge into
one image with several captions, in file order; their default is ``captions_per_image="all"``. The
benchmark formats default to 5 (see :func:`~radapter.data.retrieval.sets.select_captions`).

Every reader checks that the image files exist (one ``stat`` each) unless ``check_files=False``.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from typing import Any

from radapter.data.base import DatasetLayoutError
from radapter.data.errors import DataError
from radapter.data.images import IMAGE_EXTENSIONS
from radapter.data.retrieval.sets import CaptionsPerImage, ImageTextSet, check_image_files, select_captions

__all__ = [
    "KARPATHY_SPLITS",
    "load_image_text_set",
    "read_caption_csv",
    "read_caption_jsonl",
    "read_coco_captions",
    "read_flickr_txt",
    "read_karpathy_json",
]

KARPATHY_SPLITS = ("train", "val", "test", "restval")


def _read_json(path: str) -> Any:
    if not os.path.isfile(path):
        raise DatasetLayoutError(path, "annotation file not found")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise DatasetLayoutError(path, f"not valid JSON ({exc})") from exc


def _join(root: str, *parts: str) -> str:
    rel = os.path.join(*parts)
    return rel if os.path.isabs(rel) else os.path.join(root, rel)


def _image_label(image_id: Any, path: str) -> str:
    """``"391895 (COCO_val2014_000000391895.jpg)"``, or just the file name when that is the id."""
    name = os.path.basename(path)
    return name if str(image_id) == name else f"{image_id} ({name})"


def _finish(
    name: str, source: str, root: str, ids: list, paths: list[str], captions: list[list[str]], k, check_files: bool
) -> ImageTextSet:
    if not ids:
        raise DatasetLayoutError(source, "no images")
    selected = [select_captions(c, k, _image_label(i, p), source) for i, p, c in zip(ids, paths, captions)]
    if check_files:
        check_image_files(paths, source, root)
    return ImageTextSet(name=name, captions=selected, image_ids=ids, image_paths=paths, source=source)


def _parse_splits(split: str | Sequence[str]) -> list[str]:
    names = [s.strip() for s in split.split("+")] if isinstance(split, str) else [str(s) for s in split]
    bad = [s for s in names if s not in KARPATHY_SPLITS]
    if bad or not names:
        raise DataError(
            f"unknown Karpathy split(s) {bad or names}; expected names from {KARPATHY_SPLITS} joined by '+'"
        )
    return names


def read_karpathy_json(
    path: str | os.PathLike,
    image_root: str | os.PathLike,
    split: str | Sequence[str] = "test",
    captions_per_image: CaptionsPerImage = 5,
    name: str | None = None,
    check_files: bool = True,
) -> ImageTextSet:
    """Reads a Karpathy split file (``dataset_coco.json``, ``dataset_flickr30k.json``, ``dataset_flickr8k.json``).

    Args:
        path: The JSON file.
        image_root: Folder holding the images: ``<root>/<filepath>/<filename>`` for COCO (``filepath`` is
            ``train2014`` or ``val2014``), ``<root>/<filename>`` for Flickr.
        split: Split names joined by ``+`` (``"test"``, ``"train+restval"``) or a list of them.
        captions_per_image: An int (first k sentences) or ``"all"``.
        name: Set name; default ``<dataset>_<split>`` (``coco_test``).
        check_files: Check that every image file exists.

    Image ids are ``cocoid`` when present (COCO), else ``imgid``.
    """
    path, root = os.fspath(path), os.fspath(image_root)
    wanted = _parse_splits(split)
    data = _read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DatasetLayoutError(path, "expected a Karpathy split file: an object with an 'images' list")
    ids, paths, captions = [], [], []
    found: dict[str, int] = {}
    for n, entry in enumerate(data["images"]):
        for key in ("filename", "split", "sentences"):
            if key not in entry:
                raise DatasetLayoutError(path, f"images[{n}] has no {key!r} (keys: {sorted(entry)})")
        found[entry["split"]] = found.get(entry["split"], 0) + 1
        if entry["split"] not in wanted:
            continue
        image_id = entry.get("cocoid", entry.get("imgid", entry["filename"]))
        try:
            sentences = [s["raw"] for s in entry["sentences"]]
        except (KeyError, TypeError) as exc:
            raise DatasetLayoutError(
                path, f"images[{n}] ({entry['filename']}): every sentence needs a 'raw' text"
            ) from exc
        ids.append(image_id)
        paths.append(_join(root, entry.get("filepath", ""), entry["filename"]))
        captions.append(sentences)
    if not ids:
        raise DatasetLayoutError(path, f"no images in split {'+'.join(wanted)}; images per split in the file: {found}")
    name = name or f"{data.get('dataset', os.path.splitext(os.path.basename(path))[0])}_{'+'.join(wanted)}"
    return _finish(name, path, root, ids, paths, captions, captions_per_image, check_files)


def read_coco_captions(
    path: str | os.PathLike,
    image_root: str | os.PathLike,
    captions_per_image: CaptionsPerImage = 5,
    name: str | None = None,
    check_files: bool = True,
) -> ImageTextSet:
    """Reads a COCO-format caption file (CLIP_benchmark's ``coco_test_karpathy.json``).

    Images keep the order of ``images``; each image's captions keep the order of ``annotations``.
    """
    path, root = os.fspath(path), os.fspath(image_root)
    data = _read_json(path)
    if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
        raise DatasetLayoutError(path, "expected COCO caption format: an object with 'images' and 'annotations'")
    by_id: dict[Any, int] = {}
    ids, paths = [], []
    for n, image in enumerate(data["images"]):
        if "id" not in image or "file_name" not in image:
            raise DatasetLayoutError(path, f"images[{n}] needs 'id' and 'file_name' (keys: {sorted(image)})")
        if image["id"] in by_id:
            raise DatasetLayoutError(path, f"image id {image['id']} occurs twice in 'images'")
        by_id[image["id"]] = len(ids)
        ids.append(image["id"])
        paths.append(_join(root, image["file_name"]))
    captions: list[list[str]] = [[] for _ in ids]
    for n, ann in enumerate(data["annotations"]):
        if "image_id" not in ann or "caption" not in ann:
            raise DatasetLayoutError(path, f"annotations[{n}] needs 'image_id' and 'caption' (keys: {sorted(ann)})")
        if ann["image_id"] not in by_id:
            raise DatasetLayoutError(path, f"annotations[{n}] refers to image id {ann['image_id']}, not in 'images'")
        captions[by_id[ann["image_id"]]].append(ann["caption"])
    name = name or os.path.splitext(os.path.basename(path))[0]
    return _finish(name, path, root, ids, paths, captions, captions_per_image, check_files)


def _split_image_caption(line: str) -> tuple[str, str] | None:
    """``"a.jpg,text, with commas"`` -> ``("a.jpg", "text, with commas")``; None if no image name leads the line."""
    lower = line.lower()
    cut = min((i for ext in IMAGE_EXTENSIONS if (i := lower.find(ext + ",")) > 0), default=-1)
    if cut < 0:
        return None
    end = cut + lower[cut:].index(",")
    caption = line[end + 1 :].strip()
    if len(caption) >= 2 and caption[0] == caption[-1] == '"':  # a CSV writer's quoting
        caption = caption[1:-1].replace('""', '"')
    return line[:end].strip(), caption


def read_flickr_txt(
    path: str | os.PathLike,
    image_root: str | os.PathLike,
    captions_per_image: CaptionsPerImage = 5,
    name: str | None = None,
    check_files: bool = True,
) -> ImageTextSet:
    """Reads CLIP_benchmark's ``flickr30k_test_karpathy.txt``: a header, then ``<image file>,<caption>`` lines.

    The first line is the header and is skipped when it does not start with an image file name. Images keep
    the order of their first line; image ids are the file names.
    """
    path, root = os.fspath(path), os.fspath(image_root)
    if not os.path.isfile(path):
        raise DatasetLayoutError(path, "annotation file not found")
    by_name: dict[str, int] = {}
    captions: list[list[str]] = []
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parsed = _split_image_caption(line)
        if parsed is None:
            if line_no == 1:
                continue  # the header ("image,caption")
            raise DatasetLayoutError(
                path,
                f"line {line_no}: expected '<image file>,<caption>' with an image extension {IMAGE_EXTENSIONS}, got {line[:80]!r}",
            )
        image, caption = parsed
        if image not in by_name:
            by_name[image] = len(captions)
            captions.append([])
        captions[by_name[image]].append(caption)
    ids = list(by_name)
    name = name or os.path.splitext(os.path.basename(path))[0]
    return _finish(name, path, root, ids, [_join(root, i) for i in ids], captions, captions_per_image, check_files)


def _group_rows(
    path: str, root: str, rows: list[tuple[int, str, str, Any]], label: str
) -> tuple[list, list[str], list[list[str]]]:
    """Merges ``(line, image, caption, group)`` rows by group (or image); a group must keep one image."""
    order: dict[Any, int] = {}
    ids, paths, captions = [], [], []
    for line_no, image, caption, group in rows:
        key = image if group is None else group
        file = _join(root, os.path.expanduser(image))
        if key not in order:
            order[key] = len(ids)
            ids.append(key)
            paths.append(file)
            captions.append([])
        elif paths[order[key]] != file:
            raise DatasetLayoutError(
                path,
                f"{label} {line_no}: group {key!r} has image {image!r} but earlier rows have {paths[order[key]]!r}",
            )
        captions[order[key]].append(caption)
    return ids, paths, captions


def read_caption_csv(
    path: str | os.PathLike,
    image_root: str | os.PathLike | None = None,
    captions_per_image: CaptionsPerImage = "all",
    sep: str = "\t",
    img_key: str = "filepath",
    caption_key: str = "title",
    group_key: str | None = None,
    name: str | None = None,
    check_files: bool = True,
) -> ImageTextSet:
    """Reads a FLYP-style caption CSV/TSV (one image-caption pair per row).

    Args:
        path: The file.
        image_root: Folder relative paths are resolved against; default the file's folder.
        captions_per_image: ``"all"`` (default) or an int.
        sep: Field separator (TAB, as FLYP writes; ``","`` for CSV).
        img_key, caption_key: Column names of the image path and the caption.
        group_key: Optional column naming the image a row belongs to (e.g. COCO's image id); rows of one
            group merge into one image. Without it, rows are grouped by image path.
        name: Set name; default the file's stem.
        check_files: Check that every image file exists.
    """
    path = os.fspath(path)
    root = os.fspath(image_root) if image_root is not None else os.path.dirname(os.path.abspath(path))
    if not os.path.isfile(path):
        raise DatasetLayoutError(path, "caption file not found")
    with open(path, encoding="utf-8", newline="") as f:
        table = [r for r in csv.reader(f, delimiter=sep) if any(cell.strip() for cell in r)]
    if not table:
        raise DatasetLayoutError(path, "file is empty (a header line is needed)")
    header = [c.strip() for c in table[0]]
    cols = {}
    for role, key in (("image path", img_key), ("caption", caption_key), ("group", group_key)):
        if key is None:
            continue
        if key not in header:
            hint = " (is the separator right? the header was read as one column)" if len(header) == 1 else ""
            raise DatasetLayoutError(path, f"missing {role} column {key!r}; columns found: {header}{hint}")
        cols[role] = header.index(key)
    width = max(cols.values()) + 1
    rows = []
    for line_no, r in enumerate(table[1:], start=2):
        if len(r) < width:
            raise DatasetLayoutError(path, f"row {line_no} has {len(r)} fields, expected {len(header)}: {r}")
        image = r[cols["image path"]].strip()
        if not image:
            raise DatasetLayoutError(path, f"row {line_no} has an empty {img_key!r}")
        group = r[cols["group"]].strip() if "group" in cols else None
        rows.append((line_no, image, r[cols["caption"]], group))
    ids, paths, captions = _group_rows(path, root, rows, "row")
    name = name or os.path.splitext(os.path.basename(path))[0]
    return _finish(name, path, root, ids, paths, captions, captions_per_image, check_files)


def read_caption_jsonl(
    path: str | os.PathLike,
    image_root: str | os.PathLike | None = None,
    captions_per_image: CaptionsPerImage = "all",
    name: str | None = None,
    check_files: bool = True,
) -> ImageTextSet:
    """Reads a JSONL file of ``{"image": path, "caption": text, "group": key}`` lines (``group`` optional).

    Lines of the same group (or, without ``group``, the same image) merge into one image with several captions.
    """
    path = os.fspath(path)
    root = os.fspath(image_root) if image_root is not None else os.path.dirname(os.path.abspath(path))
    if not os.path.isfile(path):
        raise DatasetLayoutError(path, "caption file not found")
    rows = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetLayoutError(path, f"line {line_no} is not valid JSON ({exc})") from exc
            if (
                not isinstance(obj, dict)
                or not isinstance(obj.get("image"), str)
                or not isinstance(obj.get("caption"), str)
            ):
                raise DatasetLayoutError(
                    path,
                    f'line {line_no}: expected {{"image": str, "caption": str, "group": optional}}, got {line.strip()[:80]}',
                )
            group = obj.get("group")
            if group is not None and not isinstance(group, str | int):
                raise DatasetLayoutError(path, f"line {line_no}: 'group' must be a string or an integer, got {group!r}")
            rows.append((line_no, obj["image"], obj["caption"], group))
    ids, paths, captions = _group_rows(path, root, rows, "line")
    name = name or os.path.splitext(os.path.basename(path))[0]
    return _finish(name, path, root, ids, paths, captions, captions_per_image, check_files)


def _sniff_separator(path: str) -> str:
    """TAB if the header line has one (FLYP writes TAB-separated ``.csv`` files), else a comma."""
    if not os.path.isfile(path):
        raise DatasetLayoutError(path, "caption file not found")
    with open(path, encoding="utf-8") as f:
        header = f.readline()
    return "\t" if "\t" in header else ","


# what only some formats take: a Karpathy split, CSV column names and separator
_FORMAT_OPTIONS = {
    "split": ("karpathy",),
    "sep": ("csv",),
    "img_key": ("csv",),
    "caption_key": ("csv",),
    "group_key": ("csv",),
}


def load_image_text_set(
    path: str | os.PathLike,
    image_root: str | os.PathLike | None = None,
    kind: str = "auto",
    **kwargs: Any,
) -> ImageTextSet:
    """Reads any supported annotation file; ``kind="auto"`` decides by extension and content.

    Kinds: ``karpathy`` (JSON with ``images[].sentences``), ``coco`` (JSON with ``annotations``), ``flickr_txt``
    (``.txt``), ``csv`` (``.csv``/``.tsv``; separator TAB if the header has one, else comma, unless ``sep`` is
    given), ``jsonl``. Other keyword arguments go to the reader (``captions_per_image``, ``name``, …); the
    options only some formats have — ``split`` (Karpathy) and the CSV columns ``sep``, ``img_key``,
    ``caption_key``, ``group_key`` — go to those formats only, so one call serves a file of any kind.
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if kind == "auto":
        if ext == ".json":
            data = _read_json(path)
            images = data.get("images") if isinstance(data, dict) else None
            if isinstance(data, dict) and "annotations" in data:
                kind = "coco"
            elif isinstance(images, list) and (not images or "sentences" in images[0]):
                kind = "karpathy"
            else:
                raise DatasetLayoutError(path, "JSON is neither a Karpathy split file nor COCO caption format")
        else:
            kind = {".txt": "flickr_txt", ".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl"}.get(ext, "")
            if kind == "csv" and "sep" not in kwargs:
                kwargs["sep"] = _sniff_separator(path)
            if not kind:
                raise DatasetLayoutError(path, f"cannot tell the format from the extension {ext!r}; pass kind=")
    readers = {
        "karpathy": read_karpathy_json,
        "coco": read_coco_captions,
        "flickr_txt": read_flickr_txt,
        "csv": read_caption_csv,
        "jsonl": read_caption_jsonl,
    }
    if kind not in readers:
        raise DataError(f"unknown retrieval annotation kind {kind!r}; expected one of {sorted(readers)} or 'auto'")
    if kind in ("karpathy", "coco", "flickr_txt") and image_root is None:
        raise DataError(f"{path}: the {kind} format needs image_root (the folder holding the images)")
    kwargs = {k: v for k, v in kwargs.items() if kind in _FORMAT_OPTIONS.get(k, (kind,))}
    return readers[kind](path, image_root, **kwargs)
