"""Helpers for the radapter.data tests: every test builds its own tiny image folders.

A plain module rather than a ``conftest.py``: the project's tests import ``tests/conftest.py`` as
``conftest``, and a second file of that name here would shadow it.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from pathlib import Path

from PIL import Image


def png_bytes(size: tuple[int, int] = (8, 6), color: tuple[int, int, int] = (200, 30, 30), mode: str = "RGB") -> bytes:
    """Encodes a solid-colour PNG; tests write these bytes instead of encoding an image per file."""
    buffer = io.BytesIO()
    image = Image.new("RGB", size, color)
    if mode != "RGB":
        image = image.convert(mode)
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_image(
    path: str | os.PathLike, size: tuple[int, int] = (8, 6), color: tuple[int, int, int] = (200, 30, 30), mode="RGB"
) -> Path:
    """Writes a PNG (under any file name) and returns its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(size, color, mode))
    return path


def make_class_tree(
    root: str | os.PathLike, classes: dict[str, int] | Iterable[str], per_class: int = 1, size=(8, 6)
) -> Path:
    """Writes ``root/<folder>/imgNNN.png`` for ``{folder: n_images}`` (or ``per_class`` images per folder)."""
    root = Path(root)
    counts = classes if isinstance(classes, dict) else dict.fromkeys(classes, per_class)
    data = png_bytes(size)
    for folder, count in counts.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            (root / folder / f"img{i:03d}.png").write_bytes(data)
    return root
