"""torch Datasets over world samples, and an ImageFolder writer for the generic pipeline.

The tensors match what open_clip's preprocessing of the shipped world CLIP produces from the same
pixels (`world_clip/open_clip_config.json`: size 32, `WORLD_MEAN`/`WORLD_STD`): at 32x32 its resize
and centre crop are the identity, leaving ToTensor + Normalize.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from .generate import WorldSamples

# Per-channel pixel statistics of the pretraining mixture (all domains), rounded.
WORLD_MEAN: tuple[float, float, float] = (0.58, 0.58, 0.58)
WORLD_STD: tuple[float, float, float] = (0.30, 0.30, 0.30)


def images_to_tensor(
    images: np.ndarray,
    mean: Sequence[float] = WORLD_MEAN,
    std: Sequence[float] = WORLD_STD,
) -> torch.Tensor:
    """uint8 [N, H, W, 3] -> normalised float32 [N, 3, H, W]: (x / 255 - mean) / std."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255)
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (x - m) / s


class WorldDataset(Dataset):
    """(image, label) pairs for classification.

    Args:
        samples: world samples.
        transform: optional callable on a PIL image (e.g. open_clip's preprocess or a train
            augmentation). Without it, images are normalised with `mean`/`std` directly.
        mean, std: normalisation when `transform` is None.
    """

    def __init__(
        self,
        samples: WorldSamples,
        transform: Callable[[Image.Image], torch.Tensor] | None = None,
        mean: Sequence[float] = WORLD_MEAN,
        std: Sequence[float] = WORLD_STD,
    ) -> None:
        self.samples = samples
        self.transform = transform
        self.mean, self.std = tuple(mean), tuple(std)
        self.classes = list(samples.spec.classes)
        self.targets = samples.labels.tolist()

    def __len__(self) -> int:
        return len(self.samples)

    def image(self, i: int) -> torch.Tensor:
        if self.transform is not None:
            return self.transform(Image.fromarray(self.samples.images[i]))
        return images_to_tensor(self.samples.images[i : i + 1], self.mean, self.std)[0]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.image(i), int(self.samples.labels[i])

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All images [N, 3, H, W] and labels [N] at once (no transform): the fast path for small runs."""
        return images_to_tensor(self.samples.images, self.mean, self.std), torch.from_numpy(self.samples.labels)


class WorldCaptionDataset(WorldDataset):
    """(image, caption) pairs for contrastive training; tokenise in the collate function."""

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str]:  # type: ignore[override]
        return self.image(i), self.samples.captions[i]


def write_image_folder(samples: WorldSamples, root: str | Path) -> Path:
    """Writes `root/<class name>/<index>.png` (lossless), readable by torchvision's ImageFolder.

    Class folders sort into the same order as `spec.classes` (which is sorted), so ImageFolder's
    label indices equal `samples.labels`. Also writes `root/classnames.txt` (one name per line) and
    `root/captions.tsv` (relative path, caption, domain, colour).
    """
    root = Path(root)
    spec = samples.spec
    if list(spec.classes) != sorted(spec.classes):
        raise ValueError("class names must be sorted for ImageFolder label indices to match")
    for name in spec.classes:
        (root / name).mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(len(samples)):
        rel = f"{spec.classes[samples.labels[i]]}/{i:06d}.png"
        Image.fromarray(samples.images[i]).save(root / rel)
        caption = samples.captions[i].replace("\t", " ")
        rows.append(f"{rel}\t{caption}\t{spec.domains[samples.domains[i]]}\t{spec.colours[samples.colours[i]]}")
    (root / "classnames.txt").write_text("\n".join(spec.classes) + "\n")
    (root / "captions.tsv").write_text("path\tcaption\tdomain\tcolour\n" + "\n".join(rows) + "\n")
    return root


def write_splits(splits: dict[str, WorldSamples], root: str | Path) -> dict[str, Path]:
    """`write_image_folder` for each split (e.g. of `downstream_benchmark`) into `root/<split name>/`."""
    return {name: write_image_folder(samples, Path(root) / name) for name, samples in splits.items()}
