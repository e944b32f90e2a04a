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
in order of precedence, from the ``classnames`` argument, from a class-names file (``classnames_file``
or ``root/classnames.txt``), or from the folder names with underscores turned into spaces. Names are
bound to folders *by name* (``folder<TAB>name`` lines, or names equal to the folder names), never by
line order: see :func:`read_classnames_file`. Zero-shot heads are built from these names, so a folder
called ``n01440764`` deserves a ``classnames.txt``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from radapter.data.base import DatasetLayoutError, ImageSampleDataset, normalize_classname, preview, render_tree
from radapter.data.errors import DataError, DataTypeError
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

log = logging.getLogger("radapter")

#: Optional file in an ImageFolder root that names the classes.
CLASSNAMES_FILE = "classnames.txt"


def imagefolder_layout(root: str = "root", example_folders: Sequence[str] = ("class_a", "class_b")) -> str:
    """The expected-layout drawing used in ImageFolder errors."""
    ext = "|".join(e.lstrip(".") for e in IMAGE_EXTENSIONS)
    children: list[str | tuple[str, Sequence[str]]] = [
        (f"{example_folders[0]}/", [f"img001.jpg   (any of: {ext}; case-insensitive)", "..."]),
        (f"{example_folders[1]}/", ["..."]),
        "...               (one folder per class, at least one image each)",
        f"{CLASSNAMES_FILE}    (optional: folder<TAB>name lines)",
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
    """Reads a class-names file and returns one name per folder, in the order of ``folders``.

    Names are bound to folders *by name*, never by line order: a file written in another order than the
    sorted folders would otherwise scramble every label without a word. Accepted forms (blank lines and
    lines starting with ``#`` are ignored):

    * ``folder<TAB>name`` lines (used as soon as any line has a TAB), covering every folder once;
    * ``folder name`` lines whose first word is a folder, covering every folder once (Kaggle's
      ``LOC_synset_mapping.txt``: ``n01440764 tench, Tinca tinca``);
    * one name per line where the names *are* the folder names, up to case, spaces and underscores
      (``Golden Retriever`` for folder ``golden_retriever``), in any order.

    A plain list of other names is refused: the error shows the mapping sorted-folder order would give
    and the ``folder<TAB>name`` lines to write if that mapping is right.

    Args:
        path: The file.
        folders: The class folders, in label order.

    Raises:
        DatasetLayoutError: The file does not match the folders, or binds them ambiguously.
    """
    with open(path, encoding="utf-8-sig") as f:
        lines = [line.rstrip("\r\n") for line in f]
    lines = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if any("\t" in line for line in lines):
        pairs: list[tuple[str, str]] = []
        for number, line in enumerate(lines, 1):
            folder, sep, name = line.partition("\t")
            if not sep or not folder.strip() or not name.strip():
                raise DatasetLayoutError(path, f"entry {number} {line!r} is not 'folder<TAB>name'")
            pairs.append((folder.strip(), name.strip()))
        return _names_from_mapping(path, _unique_mapping(path, pairs), folders, source=CLASSNAMES_FILE)
    stripped = [line.strip() for line in lines]
    first_words = [line.split(None, 1) for line in stripped]
    if (
        len(stripped) == len(folders)
        and all(len(words) == 2 for words in first_words)
        and {words[0] for words in first_words} == set(folders)
    ):
        pairs = [(words[0], words[1].strip()) for words in first_words]
        return _names_from_mapping(path, _unique_mapping(path, pairs), folders, source=CLASSNAMES_FILE)
    return _names_from_list(path, stripped, folders, source=CLASSNAMES_FILE)


def _unique_mapping(path: str | os.PathLike, pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    seen: dict[str, int] = {}
    for number, (folder, _) in enumerate(pairs, 1):
        if folder in seen:
            raise DatasetLayoutError(
                path, f"{CLASSNAMES_FILE} names folder {folder!r} twice (entries {seen[folder]} and {number})"
            )
        seen[folder] = number
    return dict(pairs)


def _names_from_list(
    path: str | os.PathLike, names: Sequence[str], folders: Sequence[str], *, source: str
) -> list[str]:
    """Binds a plain list of names to folders: only when the names are the folders' own names (or one folder)."""
    if len(names) != len(folders):
        raise DatasetLayoutError(
            path,
            f"{source} has {len(names)} class names but the folder has {len(folders)} class folders "
            f"({preview(folders)}); give 'folder<TAB>name' lines (or a {{folder: name}} mapping), one per folder",
        )
    by_key: dict[str, str] = {}
    for folder in folders:
        by_key.setdefault(normalize_classname(folder), folder)
    bound: dict[str, str] = {}
    for name in names:
        folder = by_key.get(normalize_classname(name))
        if folder is None or folder in bound:
            break
        bound[folder] = name
    else:
        return [bound[folder] for folder in folders]
    if len(folders) == 1:
        return list(names)
    shown = min(len(folders), 10)
    more = f"\n    ... and {len(folders) - shown} more" if len(folders) > shown else ""
    guess = "\n".join(f"    {folder} -> {name}" for folder, name in zip(folders[:shown], names[:shown]))
    lines = "\n".join(f"    {folder}<TAB>{name}" for folder, name in zip(folders[:shown], names[:shown]))
    raise DatasetLayoutError(
        path,
        f"{source} lists {len(names)} class names that are not the folder names, so which folder each one names "
        f"would be a guess from their order. Read in sorted-folder order they would mean:\n{guess}{more}\n"
        f"If that is right, write {CLASSNAMES_FILE} as 'folder<TAB>name' lines:\n{lines}{more}\n"
        "or pass a {folder: name} mapping. (Names that equal the folder names are bound by name in any order.)",
    )


def _names_from_mapping(
    path: str | os.PathLike,
    mapping: Mapping[str, str],
    folders: Sequence[str],
    source: str,
    *,
    allow_extra: bool = False,
) -> list[str]:
    missing = [f for f in folders if f not in mapping]
    unknown = [] if allow_extra else [f for f in mapping if f not in set(folders)]
    if missing or unknown:
        problems = []
        if missing:
            problems.append(f"no name for class folders {preview(missing)}")
        if unknown:
            problems.append(f"names given for folders that do not exist: {preview(unknown)}")
        raise DatasetLayoutError(path, f"{source}: " + "; ".join(problems))
    return [str(mapping[f]) for f in folders]


class ImageFolderDataset(ImageSampleDataset):
    """Images in one sub-folder per class.

    Example:
        >>> ds = ImageFolderDataset("data/pets", transform=eval_transform())  # doctest: +SKIP
        >>> image, label = ds[0]; ds.classnames[label]  # doctest: +SKIP
        'golden retriever'

    Args:
        root: The folder holding one sub-folder per class.
        transform: Applied to each decoded RGB ``PIL.Image``.
        classnames: Names to use instead of ``classnames.txt`` or the folder names: a ``{folder: name}`` mapping
            (extra keys are ignored), or a list of names that equal the folder names up to case, spaces and
            underscores (bound by name, in any order). A list of other names is refused: list order is no
            safe way to say which folder a name belongs to.
        skip_corrupt: Check every image now and drop unreadable ones (see :attr:`skipped`); otherwise the
            first unreadable image raises :class:`~radapter.data.images.CorruptImageError` when read.
        class_folders: Use exactly these folders, in this order, as classes 0..n-1 (other folders are
            ignored). Missing ones are an error. Default: every sub-folder, sorted.
        expected_layout: Drawing shown in layout errors, for datasets with a known layout.
        description: What the folder is meant to hold, for error messages (e.g. ``"ImageNet-A"``).
        progress: Show a progress bar during the ``skip_corrupt`` scan.
        classnames_file: A class-names file to read instead of ``root/classnames.txt`` (same forms, see
            :func:`read_classnames_file`).

    Attributes:
        root: The root folder.
        class_folders: The class folders, in label order (label order as built; see :meth:`relabel`).
        class_to_idx: ``{folder: label}``, kept current by :meth:`relabel`.
        classnames: Class name of each label.
        samples: ``(path, label)`` pairs; ``targets``: the labels.

    Raises:
        DatasetLayoutError: ``root`` is missing, has no class folders, a class folder has no images, a
            requested class folder is missing, or the class names do not bind to the folders by name.
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
        classnames_file: str | os.PathLike | None = None,
    ):
        self.root = os.path.expanduser(os.fspath(root))  # YAML does not expand "~" as a shell does
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
        super().__init__(samples, self._resolve_classnames(classnames, classnames_file, folders), transform)
        if skip_corrupt:
            self.skip_corrupt_images(progress=progress)

    def _on_relabel(self, mapping: Sequence[int]) -> None:
        self.class_to_idx = {
            folder: mapping[label] for folder, label in self.class_to_idx.items() if 0 <= label < len(mapping)
        }

    def _resolve_classnames(
        self,
        classnames: Sequence[str] | Mapping[str, str] | None,
        classnames_file: str | os.PathLike | None,
        folders: list[str],
    ) -> list[str]:
        if classnames is not None and classnames_file is not None:
            raise DataError(f"{self.root}: give classnames or classnames_file, not both")
        if isinstance(classnames, Mapping):
            # A mapping binds by folder name; extra keys are fine (a lookup table such as every ImageNet class).
            names = _names_from_mapping(self.root, classnames, folders, "classnames argument", allow_extra=True)
        elif isinstance(classnames, (str, bytes)):
            raise DataTypeError(
                f"classnames must be a list of names or a {{folder: name}} mapping, got the string {classnames!r} "
                "(pass a file as classnames_file)"
            )
        elif classnames is not None:
            names = _names_from_list(self.root, [str(n) for n in classnames], folders, source="classnames argument")
        elif classnames_file is not None:
            if not os.path.isfile(classnames_file):
                raise DatasetLayoutError(classnames_file, "class-names file not found")
            names = read_classnames_file(classnames_file, folders)
        elif os.path.isfile(os.path.join(self.root, CLASSNAMES_FILE)):
            names = read_classnames_file(os.path.join(self.root, CLASSNAMES_FILE), folders)
        else:
            names = [folder_to_classname(folder) for folder in folders]
            if all(len(f) == 9 and f[0] == "n" and f[1:].isdigit() for f in folders):
                log.warning(
                    "%s: the class folders are WordNet IDs (%s) and no class names were given, so the text encoder "
                    "sees prompts like 'a photo of a %s.'; give classnames (a {wnid: name} mapping, e.g. ImageNet's "
                    "zip(imagenet_wnids(), imagenet_classnames())) or a %s",
                    self.root,
                    preview(folders, 3),
                    folders[0],
                    CLASSNAMES_FILE,
                )
        _warn_shared_names(self.root, folders, names)
        return names


def _warn_shared_names(root: str, folders: Sequence[str], names: Sequence[str]) -> None:
    """Warns when two classes get one name: a zero-shot head built from names cannot tell them apart."""
    by_name: dict[str, list[str]] = {}
    for folder, name in zip(folders, names):
        by_name.setdefault(normalize_classname(name), []).append(folder)
    shared = {name: group for name, group in by_name.items() if len(group) > 1}
    if shared:
        described = "; ".join(f"{', '.join(group)} -> {name!r}" for name, group in list(shared.items())[:5])
        log.warning(
            "%s: %d class names are shared by several folders (%s): classes with the same class name get the "
            "same zero-shot text embedding",
            root,
            len(shared),
            described,
        )


def _nesting_hint(root: str, present: Sequence[str], wanted: Sequence[str]) -> str:
    """Names the inner folders that hold the classes when ``root`` is one level too high.

    An archive unpacked one level too deep (``imagenet-r/imagenet-r/``) or an ImageNet root holding
    ``train/`` and ``val/``: every candidate is named, so the hint never steers an evaluation to ``train/``.
    """
    wanted_set = set(wanted)
    if any(folder in wanted_set for folder in present):
        return ""
    found = []
    for folder in present:
        try:
            inner = set(list_class_folders(os.path.join(root, folder)))
        except OSError:
            continue
        if inner & wanted_set:
            found.append(os.path.join(root, folder))
    if not found:
        return ""
    where = found[0] if len(found) == 1 else ", ".join(found[:-1]) + " and " + found[-1]
    return (
        f"; the class folders seem to be in {where}: pass {'that path' if len(found) == 1 else 'one of them'} instead"
    )
