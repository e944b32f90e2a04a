"""Reading semantic-segmentation label maps without losing bits.

detectron2's layout stores 0-based train ids, one per pixel: 8-bit PNGs with 255 = ignore for most benchmarks,
but 16-bit TIFFs for the large vocabularies (ADE-847: ignore 65535; Pascal-Context-459: ignore 459). Reading
those as 8-bit (``Image.convert("L")``, ``np.asarray(img, dtype=np.uint8)``) does not fail: it clips or wraps
(459 -> 203, 65535 -> 255), and the evaluation silently scores the wrong classes. :func:`read_label` keeps the
file's own integer type (uint8, uint16 or int32) and refuses colour or float images, which are not train-id maps.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
from PIL import Image

__all__ = ["LabelFileError", "check_label_values", "read_label"]

# PIL modes that hold one integer per pixel, and what they mean.
_INTEGER_MODES = {"L": "8-bit", "P": "8-bit palette indices", "I;16": "16-bit", "I;16L": "16-bit", "I;16B": "16-bit"}


class LabelFileError(ValueError):
    """A label file is missing, unreadable, not a single-channel integer image, or holds values out of range.

    Attributes:
        path: The file.
        reason: What is wrong, in words.
    """

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"label file {self.path}: {reason}")

    def __reduce__(self):
        return (type(self), (self.path, self.reason))


def read_label(path: str | os.PathLike) -> np.ndarray:
    """Reads a label map as integers of the file's own width.

    Args:
        path: A single-channel PNG/TIFF (8-bit, 16-bit or 32-bit integer) or palette PNG (the palette indices
            are the labels, as in Pascal VOC's raw ``SegmentationClass``).

    Returns:
        [H, W] array of dtype uint8, uint16 or int32 (native byte order).

    Raises:
        LabelFileError: missing or undecodable file, or a colour / float / binary image.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            with Image.open(path) as img:
                img.load()
                mode = img.mode
                if mode not in _INTEGER_MODES and mode != "I":
                    raise LabelFileError(
                        path,
                        f"image mode {mode!r} is not a map of integer train ids (expected a single-channel 8-bit, "
                        "16-bit or 32-bit integer image; colour-coded masks must be converted to train ids first)",
                    )
                arr = np.asarray(img)
    except LabelFileError:
        raise
    except FileNotFoundError as e:
        raise LabelFileError(path, "file not found") from e
    except (OSError, ValueError, SyntaxError) as e:
        raise LabelFileError(path, f"cannot decode ({type(e).__name__}: {e})") from e
    if arr.ndim != 2:
        raise LabelFileError(path, f"expected a 2-D label map, got shape {arr.shape}")
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if arr.dtype == np.int32 and arr.size and int(arr.min()) < 0:
        raise LabelFileError(path, f"negative label {int(arr.min())}")
    return np.ascontiguousarray(arr)


def check_label_values(label: np.ndarray, num_classes: int, ignore_value: int, path: str | os.PathLike = "") -> None:
    """Raises :class:`LabelFileError` when a pixel holds neither a class id in ``[0, num_classes)`` nor the
    ignore value — the usual sign of a wrong class list, ignore value, or bit depth."""
    bad = (label >= num_classes) & (label != ignore_value)
    if bad.any():
        values = np.unique(label[bad])[:8].tolist()
        raise LabelFileError(
            path or "<array>",
            f"values {values} are neither class ids 0..{num_classes - 1} nor the ignore value {ignore_value} "
            "(wrong class list or ignore value?)",
        )
