"""ImageFolder: one sub-folder per class, as torchvision's ImageFolder, with readable class names.

Layout::

    root/
    ├── golden_retriever/      -> class "golden retriever"
    │   ├── 0001.jpg
    │   └── ...
    ├── tabby_cat/
    │   └── ...
    └── classnames.txt         (optional)

Class folders are sorted by name and numbered from 0. The names given to the text encoder come,
in order of precedence, from the ``classnames`` argument, from ``root/classnames.txt`` (either one
name per line in sorted-folder order, or ``folder<TAB>name`` lines), or from the folder names with
underscores turned into spaces. Zero-shot heads are built from these names, so a folder called
``n01440764`` deserves a ``classnames.txt``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from radapter.data.base import DatasetLayoutError, ImageSampleDataset, preview, render_tree
from radapter.data.images import IMAGE_EXTENSIONS, is_image_file

__all__ = [
    "CLASSNAMES_FILE",
    "ImageFolderDataset",
    "folder_to_classname",
    "imagefolder_layout",
    "list_class_folders",
    "list_image_files",
    "read_classnames_file",
]

#: Optional file in an ImageFolder root that names the classes.
CLASSNAMES_FILE = "classnames.txt"


def imagefolder_layout(root: str = "root", example_folders: Sequence[str] = ("class_a", "class_b")) -> str:
    """The expected-layout drawing used in ImageFolder errors."""
    ext = "|".join(e.lstrip(".") for e in IMAGE_EXTENSIONS)
    children: list[str | tuple[str, Sequence[str]]] = [
        (f"{example_folders[0]}/", [f"img001.jpg   (any of: {ext}; case-insensitive)", "..."]),
        (f"{example_folders[1]}/", ["..."]),
        "...               (one folder per class, at least one image each)",
        f"{CLASSNAMES_FILE}    (optional: one name per line in sorted-folder order, or folder<TAB>name)",
    ]
    return render_tree(root, children)


def folder_to_classname(folder: str) -> str:
    """Turns a folder name into a class name for prompts: ``"golden_retriever"`` -> ``"golden retriever"``."""
    return folder.replace("_", " ").strip()


def list_class_folders(root: str | os.PathLike) -> list[str]:
    """Names of the visible sub-folders of ``root``, sorted (hidden ones such as ``.git`` are skipped)."""
    with os.scandir(root) as entries:
        return sorted(e.name for e in entries if not e.name.startswith(".") and e.is_dir())


def list_image_files(folder: str | os.PathLike) -> list[str]:
    """Image files under ``folder`` (recursively, following links), in a sorted, platform-independent order."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        # Sorting in place makes os.walk visit sub-folders in order, so sample order (and with it
        # every seeded split) is the same on every file system.
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(
            os.path.join(dirpath, name)
            for name in sorted(filenames)
            if not name.startswith(".") and is_image_file(name)
        )
    return found


def read_classnames_file(path: str | os.PathLike, folders: Sequence[str]) -> list[str]:
    """Reads ``classnames.txt`` and returns one name per folder, in the order of ``folders``.

    Two forms are accepted; blank lines and lines starting with ``#`` are ignored:

    * one name per line, in sorted-folder order (the count must match the folders);
    * ``folder<TAB>name`` lines (used as soon as any line has a TAB), covering every folder.

    Args:
        path: The file.
        folders: The class folders, in label order.

    Raises:
        DatasetLayoutError: The file does not match the folders.
    """
    with open(path, encoding="utf-8") as f:
        lines = [line.rstrip("\r\n") for line in f]
    lines = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if any("\t" in line for line in lines):
        mapping: dict[str, str] = {}
        for number, line in enumerate(lines, 1):
            folder, sep, name = line.partition("\t")
            if not sep or not folder.strip() or not name.strip():
                raise DatasetLayoutError(path, f"entry {number} {line!r} is not 'folder<TAB>name'")
            mapping[folder.strip()] = name.strip()
        return _names_from_mapping(path, mapping, folders, source=CLASSNAMES_FILE)
    names = [line.strip() for line in lines]
    if len(names) != len(folders):
        raise DatasetLayoutError(
            path,
            f"has {len(names)} class names but the folder has {len(folders)} class folders "
            f"({preview(folders)}); give one name per folder, in sorted folder order, or 'folder<TAB>name' lines",
        )
    return names


def _names_from_mapping(path: str | os.PathLike, mapping: Mapping[str, str], folders: Sequence[str], source: str):
    missing = [f for f in folders if f not in mapping]
    unknown = [f for f in mapping if f not in set(folders)]
    if missing or unknown:
        problems = []
        if missing:
            problems.append(f"no name for class folders {preview(missing)}")
        if unknown:
            problems.append(f"names given for folders that do not exist: {preview(unknown)}")
        raise DatasetLayoutError(path, f"{source}: " + "; ".join(problems))
    return [mapping[f] for f in folders]


class ImageFolderDataset(ImageSampleDataset):
    """Images in one sub-folder per class.

    Example:
        >>> ds = ImageFolderDataset("data/pets", transform=eval_transform())  # doctest: +SKIP
        >>> image, label = ds[0]; ds.classnames[label]  # doctest: +SKIP
        'golden retriever'

    Args:
        root: The folder holding one sub-folder per class.
        transform: Applied to each decoded RGB ``PIL.Image``.
        classnames: Names to use instead of ``classnames.txt`` or the folder names: a list aligned with the
            class folders, or a ``{folder: name}`` mapping.
        skip_corrupt: Check every image now and drop unreadable ones (see :attr:`skipped`); otherwise the
            first unreadable image raises :class:`~radapter.data.images.CorruptImageError` when read.
        class_folders: Use exactly these folders, in this order, as classes 0..n-1 (other folders are
            ignored). Missing ones are an error. Default: every sub-folder, sorted.
        expected_layout: Drawing shown in layout errors, for datasets with a known layout.
        description: What the folder is meant to hold, for error messages (e.g. ``"ImageNet-A"``).
        progress: Show a progress bar during the ``skip_corrupt`` scan.

    Attributes:
        root: The root folder.
        class_folders: The class folders, in label order (label order as built; see :meth:`relabel`).
        class_to_idx: ``{folder: label}``, kept current by :meth:`relabel`.
        classnames: Class name of each label.
        samples: ``(path, label)`` pairs; ``targets``: the labels.

    Raises:
        DatasetLayoutError: ``root`` is missing, has no class folders, a class folder has no images, a
            requested class folder is missing, or ``classnames.txt`` does not match the folders.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        transform: Callable[[Any], Any] | None = None,
        classnames: Sequence[str] | Mapping[str, str] | None = None,
        skip_corrupt: bool = False,
        *,
        class_folders: Sequence[str] | None = None,
        expected_layout: str | None = None,
        description: str = "image folder",
        progress: bool = True,
    ):
        self.root = os.fspath(root)
        layout = expected_layout or imagefolder_layout(os.path.basename(self.root.rstrip("/\\")) or "root")
        if not os.path.exists(self.root):
            raise DatasetLayoutError(self.root, f"{description} not found (nothing is downloaded)", layout)
        if not os.path.isdir(self.root):
            raise DatasetLayoutError(self.root, f"{description} must be a folder, found a file", layout)

        present = list_class_folders(self.root)
        if class_folders is None:
            if not present:
                raise DatasetLayoutError(self.root, f"{description} has no class folders", layout)
            folders = present
        else:
            folders = [str(f) for f in class_folders]
            present_set = set(present)
            missing = [f for f in folders if f not in present_set]
            if missing:
                raise DatasetLayoutError(
                    self.root,
                    f"{description} is incomplete: {len(missing)} of {len(folders)} class folders are missing "
                    f"({preview(missing)}){_nesting_hint(self.root, present, folders)}",
                    layout,
                )

        samples: list[tuple[str, int]] = []
        empty: list[str] = []
        for label, folder in enumerate(folders):
            files = list_image_files(os.path.join(self.root, folder))
            if not files:
                empty.append(folder)
            samples.extend((path, label) for path in files)
        if empty:
            raise DatasetLayoutError(
                self.root,
                f"{description}: {len(empty)} class folder(s) contain no images "
                f"({', '.join(IMAGE_EXTENSIONS)}): {preview(empty)}",
                layout,
            )

        self.class_folders: list[str] = folders
        self.class_to_idx: dict[str, int] = {folder: i for i, folder in enumerate(folders)}
        super().__init__(samples, self._resolve_classnames(classnames, folders), transform)
        if skip_corrupt:
            self.skip_corrupt_images(progress=progress)

    def _on_relabel(self, mapping: Sequence[int]) -> None:
        self.class_to_idx = {
            folder: mapping[label] for folder, label in self.class_to_idx.items() if 0 <= label < len(mapping)
        }

    def _resolve_classnames(
        self, classnames: Sequence[str] | Mapping[str, str] | None, folders: list[str]
    ) -> list[str]:
        if isinstance(classnames, Mapping):
            return _names_from_mapping(self.root, classnames, folders, source="classnames argument")
        if classnames is not None:
            names = [str(name) for name in classnames]
            if len(names) != len(folders):
                raise ValueError(
                    f"classnames has {len(names)} entries but {self.root} has {len(folders)} class folders "
                    f"({preview(folders)})"
                )
            return names
        names_file = os.path.join(self.root, CLASSNAMES_FILE)
        if os.path.isfile(names_file):
            return read_classnames_file(names_file, folders)
        return [folder_to_classname(folder) for folder in folders]


def _nesting_hint(root: str, present: Sequence[str], wanted: Sequence[str]) -> str:
    """Suggests the inner folder when an archive was unpacked one level too deep (``imagenet-r/imagenet-r/``)."""
    wanted_set = set(wanted)
    if any(folder in wanted_set for folder in present):
        return ""
    for folder in present:
        try:
            inner = set(list_class_folders(os.path.join(root, folder)))
        except OSError:
            continue
        if inner & wanted_set:
            return f"; the class folders seem to be in {os.path.join(root, folder)}: pass that path instead"
    return ""
