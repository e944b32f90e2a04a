"""CLIP image preprocessing, as in the paper's recipes (``r-adapter.md`` §5).

* train: ``RandomResizedCrop(224, scale=(0.9, 1.0), bicubic)``, no flip (full-shot ImageNet);
  few-shot recipes use ``scale=(0.7, 1.0)`` and ``hflip=True``;
* eval: ``Resize(224, bicubic)`` of the shorter side, ``CenterCrop(224)``;
* both: ``ToTensor`` and normalisation with the OpenAI CLIP mean and std, taken from
  ``open_clip.constants`` so the numbers cannot drift from the ones the weights were trained with;
* ObjectNet: a 2-pixel border crop before the eval transform, as WiSE-FT / FLYP evaluate it
  (the ObjectNet images carry a thin border).

Every piece is a picklable object (no lambdas), so DataLoader workers can use them.
"""

from __future__ import annotations

from collections.abc import Sequence

from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import InterpolationMode

from radapter.data.errors import DataError
from radapter.data.images import to_rgb

__all__ = [
    "OPENAI_DATASET_MEAN",
    "OPENAI_DATASET_STD",
    "BorderCrop",
    "ToRGB",
    "border_crop",
    "eval_transform",
    "train_transform",
]


class ToRGB:
    """Converts any PIL image (grey, palette, RGBA, CMYK, 16-bit) to 8-bit RGB; RGB images pass through."""

    def __call__(self, image: Image.Image) -> Image.Image:
        return to_rgb(image)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class BorderCrop:
    """Removes ``pixels`` from each edge of a PIL image.

    Args:
        pixels: Width of the border to cut from every side.
    """

    def __init__(self, pixels: int = 2):
        if pixels < 0:
            raise DataError(f"border crop pixels must be >= 0, got {pixels}")
        self.pixels = int(pixels)

    def __call__(self, image: Image.Image) -> Image.Image:
        width, height = image.size
        p = self.pixels
        if p == 0 or width <= 2 * p or height <= 2 * p:
            # Cropping would leave nothing; a tiny image is returned whole rather than as an empty one.
            return image
        return image.crop((p, p, width - p, height - p))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(pixels={self.pixels})"


def border_crop(pixels: int = 2) -> BorderCrop:
    """The ObjectNet border crop: cuts ``pixels`` from every edge of a PIL image."""
    return BorderCrop(pixels)


def _normalize(mean: Sequence[float], std: Sequence[float]) -> list:
    return [T.ToTensor(), T.Normalize(mean=tuple(mean), std=tuple(std))]


def train_transform(
    image_size: int | tuple[int, int] = 224,
    scale: tuple[float, float] = (0.9, 1.0),
    hflip: bool = False,
    mean: Sequence[float] = OPENAI_DATASET_MEAN,
    std: Sequence[float] = OPENAI_DATASET_STD,
) -> T.Compose:
    """Training augmentation: random resized crop (bicubic), optional horizontal flip, CLIP normalisation.

    Args:
        image_size: Output side (or ``(height, width)``), the backbone's input size.
        scale: Range of the crop's area relative to the image.
        hflip: Add a random horizontal flip (the few-shot recipes use it).
        mean: Per-channel mean; the OpenAI CLIP values by default.
        std: Per-channel std; the OpenAI CLIP values by default.

    Returns:
        A transform from a PIL image to a normalised ``(3, H, W)`` float tensor.
    """
    if not 0.0 < scale[0] <= scale[1] <= 1.0:
        raise DataError(f"scale must satisfy 0 < min <= max <= 1, got {scale}")
    steps = [ToRGB(), T.RandomResizedCrop(image_size, scale=tuple(scale), interpolation=InterpolationMode.BICUBIC)]
    if hflip:
        steps.append(T.RandomHorizontalFlip())
    return T.Compose(steps + _normalize(mean, std))


def eval_transform(
    image_size: int | tuple[int, int] = 224,
    mean: Sequence[float] = OPENAI_DATASET_MEAN,
    std: Sequence[float] = OPENAI_DATASET_STD,
    resize_mode: str | None = None,
) -> T.Compose:
    """Evaluation preprocessing: bicubic resize of the shorter side, centre crop, CLIP normalisation.

    Args:
        image_size: Output side (or ``(height, width)``).
        mean: Per-channel mean; the OpenAI CLIP values by default.
        std: Per-channel std; the OpenAI CLIP values by default.
        resize_mode: The model's ``preprocess_cfg.resize_mode``: ``"squash"`` (SigLIP) resizes the whole image
            to the input size without keeping its aspect ratio; anything else (CLIP's ``"shortest"``) resizes the
            shorter side and centre-crops.

    Returns:
        A transform from a PIL image to a normalised ``(3, H, W)`` float tensor.
    """
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if resize_mode == "squash":
        steps = [ToRGB(), T.Resize(size, interpolation=InterpolationMode.BICUBIC)]
    else:
        # For a (height, width) size, resizing the shorter side to the larger of the two guarantees
        # the centre crop never runs off the image.
        resize = image_size if isinstance(image_size, int) else max(image_size)
        steps = [ToRGB(), T.Resize(resize, interpolation=InterpolationMode.BICUBIC), T.CenterCrop(image_size)]
    return T.Compose(steps + _normalize(mean, std))
