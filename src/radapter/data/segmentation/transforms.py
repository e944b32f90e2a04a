"""Joint image/label transforms for semantic segmentation.

Training follows CAT-Seg's ``mask_former_semantic`` mapper: resize the shorter side (to the crop size, times an
optional random scale), random crop (padding with ignore where the image is smaller), horizontal flip, optional
SSD-style photometric jitter (image only). Labels are resized with nearest neighbour on the integer array itself
(never through an 8-bit image), so 16-bit train ids survive. Evaluation keeps the full resolution: the model
resizes internally and predictions are compared at the label's size.

Every random draw comes from the ``numpy.random.Generator`` passed in, so a dataset can seed each sample.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from PIL import Image

__all__ = ["SegEvalTransform", "SegTrainTransform", "nearest_resize", "to_tensor_normalised"]


def to_tensor_normalised(image: Image.Image | np.ndarray, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """RGB image (PIL or uint8 [H, W, 3]) -> float32 [3, H, W], ``(x / 255 - mean) / std``."""
    arr = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image, dtype=np.float32)
    x = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return (x - m) / s


def nearest_resize(label: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of an integer map, sampling at output pixel centres (any integer dtype)."""
    h, w = label.shape
    rows = np.minimum(((np.arange(height) + 0.5) * h / height).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * w / width).astype(np.int64), w - 1)
    return label[rows[:, None], cols[None, :]]


def _label_tensor(label: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(label).astype(np.int64))


class SegEvalTransform:
    """Full-resolution evaluation: normalise the image, keep the label as it is (as int64).

    Args:
        mean, std: Normalisation of the image tower (default: OpenAI CLIP's).
    """

    def __init__(self, mean: Sequence[float] = OPENAI_DATASET_MEAN, std: Sequence[float] = OPENAI_DATASET_STD):
        self.mean, self.std = tuple(mean), tuple(std)

    def __call__(
        self, image: Image.Image, label: np.ndarray, rng: np.random.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if (image.height, image.width) != label.shape:
            raise ValueError(
                f"image is {image.height}x{image.width} but its label map is {label.shape[0]}x{label.shape[1]}"
            )
        return to_tensor_normalised(image, self.mean, self.std), _label_tensor(label)


class SegTrainTransform:
    """Random resize, crop, flip and photometric jitter applied jointly to an image and its label map.

    Args:
        crop_size: Side of the square training crop (384 in CAT-Seg's ViT-B/16 recipe).
        resize_short: Shorter side before cropping (default: ``crop_size``, as CAT-Seg's ``MIN_SIZE_TRAIN``).
        scale_range: Random factor on ``resize_short`` (``(1, 1)``: none).
        hflip: Flip horizontally with probability 0.5.
        colour_jitter: SSD-style brightness (±32/255), contrast and saturation (×[0.5, 1.5]) each with
            probability 0.5 (CAT-Seg's ``COLOR_AUG_SSD``; hue is not jittered).
        ignore_value: Label given to padding.
        mean, std: Normalisation; padding is the mean colour (0 after normalisation).
    """

    def __init__(
        self,
        crop_size: int = 384,
        resize_short: int | None = None,
        scale_range: tuple[float, float] = (1.0, 1.0),
        hflip: bool = True,
        colour_jitter: bool = False,
        ignore_value: int = 255,
        mean: Sequence[float] = OPENAI_DATASET_MEAN,
        std: Sequence[float] = OPENAI_DATASET_STD,
    ):
        if crop_size <= 0:
            raise ValueError(f"crop_size must be positive, got {crop_size}")
        if not 0 < scale_range[0] <= scale_range[1]:
            raise ValueError(f"scale_range must be 0 < low <= high, got {scale_range}")
        self.crop_size = int(crop_size)
        self.resize_short = int(resize_short or crop_size)
        self.scale_range = (float(scale_range[0]), float(scale_range[1]))
        self.hflip = hflip
        self.colour_jitter = colour_jitter
        self.ignore_value = int(ignore_value)
        self.mean, self.std = tuple(mean), tuple(std)

    def _jitter(self, arr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        # Draws are always made (fixed draw order), applied with probability 0.5 each.
        apply = rng.random(3) < 0.5
        delta = rng.uniform(-32, 32)
        contrast = rng.uniform(0.5, 1.5)
        saturation = rng.uniform(0.5, 1.5)
        x = arr.astype(np.float32)
        if apply[0]:
            x = x + delta
        if apply[1]:
            x = x * contrast
        if apply[2]:
            grey = x @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
            x = grey[..., None] + saturation * (x - grey[..., None])
        return np.clip(x, 0, 255)

    def __call__(
        self, image: Image.Image, label: np.ndarray, rng: np.random.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        rng = rng if rng is not None else np.random.default_rng()
        if (image.height, image.width) != label.shape:
            raise ValueError(
                f"image is {image.height}x{image.width} but its label map is {label.shape[0]}x{label.shape[1]}"
            )
        scale = rng.uniform(*self.scale_range)
        short = max(1, round(self.resize_short * scale))
        h, w = label.shape
        nh, nw = (short, max(1, round(w * short / h))) if h <= w else (max(1, round(h * short / w)), short)
        image = image.convert("RGB").resize((nw, nh), Image.BILINEAR)
        label = nearest_resize(label, nh, nw)

        c = self.crop_size
        top = int(rng.integers(0, max(nh - c, 0) + 1))
        left = int(rng.integers(0, max(nw - c, 0) + 1))
        arr = np.asarray(image)[top : top + c, left : left + c]
        lab = label[top : top + c, left : left + c]
        flip = self.hflip and rng.random() < 0.5
        arr = self._jitter(arr, rng) if self.colour_jitter else arr.astype(np.float32)
        x = to_tensor_normalised(arr, self.mean, self.std)
        y = _label_tensor(lab)
        if x.shape[1] < c or x.shape[2] < c:  # pad bottom/right: the mean colour, and ignore in the label
            ph, pw = c - x.shape[1], c - x.shape[2]
            x = torch.nn.functional.pad(x, (0, pw, 0, ph), value=0.0)
            y = torch.nn.functional.pad(y, (0, pw, 0, ph), value=self.ignore_value)
        if flip:
            x, y = x.flip(-1), y.flip(-1)
        return x.contiguous(), y.contiguous()
