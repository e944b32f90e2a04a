"""CLIP preprocessing and the ObjectNet border crop."""

from __future__ import annotations

import pickle

import open_clip.constants
import pytest
import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import InterpolationMode

from radapter.data import BorderCrop, border_crop, eval_transform, train_transform
from radapter.data.transforms import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD


def _steps(compose):
    return {type(step): step for step in compose.transforms}


def test_normalisation_constants_come_from_open_clip():
    assert OPENAI_DATASET_MEAN is open_clip.constants.OPENAI_DATASET_MEAN
    assert OPENAI_DATASET_STD is open_clip.constants.OPENAI_DATASET_STD
    norm = _steps(eval_transform())[T.Normalize]
    assert tuple(norm.mean) == tuple(OPENAI_DATASET_MEAN) and tuple(norm.std) == tuple(OPENAI_DATASET_STD)


def test_train_transform_follows_the_recipe():
    steps = _steps(train_transform())
    crop = steps[T.RandomResizedCrop]
    assert crop.size == (224, 224) and crop.scale == (0.9, 1.0) and crop.interpolation == InterpolationMode.BICUBIC
    assert T.RandomHorizontalFlip not in steps
    few_shot = _steps(train_transform(image_size=32, scale=(0.7, 1.0), hflip=True))
    assert T.RandomHorizontalFlip in few_shot and few_shot[T.RandomResizedCrop].scale == (0.7, 1.0)
    with pytest.raises(ValueError, match="scale"):
        train_transform(scale=(0.0, 1.0))


def test_eval_transform_resizes_shorter_side_bicubic_then_centre_crops():
    steps = _steps(eval_transform(image_size=24))
    assert steps[T.Resize].size == 24 and steps[T.Resize].interpolation == InterpolationMode.BICUBIC
    assert steps[T.CenterCrop].size == (24, 24)
    # A grey 48x32 image: resize to 36x24, crop to 24x24; a constant image stays constant.
    out = eval_transform(image_size=24)(Image.new("L", (48, 32), 128))
    assert out.shape == (3, 24, 24) and out.dtype == torch.float32
    expected = (torch.tensor(128 / 255) - torch.tensor(OPENAI_DATASET_MEAN)) / torch.tensor(OPENAI_DATASET_STD)
    assert torch.allclose(out.mean(dim=(1, 2)), expected, atol=1e-3)


def test_train_transform_output_shape_and_custom_stats():
    out = train_transform(image_size=16, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))(
        Image.new("RGB", (40, 30), (255, 0, 0))
    )
    assert out.shape == (3, 16, 16)
    assert torch.allclose(out[0], torch.ones(16, 16)) and torch.allclose(out[1:], torch.zeros(2, 16, 16))


def test_border_crop_cuts_two_pixels_from_every_edge():
    image = Image.new("RGB", (10, 8), (0, 0, 0))
    for x in range(10):
        for y in range(8):
            if 2 <= x < 8 and 2 <= y < 6:
                image.putpixel((x, y), (255, 255, 255))
    cropped = border_crop()(image)
    assert cropped.size == (6, 4)
    assert cropped.getcolors() == [(24, (255, 255, 255))]  # exactly the inside remains
    assert border_crop(1)(image).size == (8, 6)
    tiny = Image.new("RGB", (4, 4))
    assert BorderCrop(2)(tiny).size == (4, 4)  # nothing would be left: returned whole


def test_transforms_pickle_for_dataloader_workers():
    for transform in (train_transform(hflip=True), eval_transform(), border_crop()):
        assert repr(pickle.loads(pickle.dumps(transform))) == repr(transform)


def test_eval_transform_squash_keeps_the_whole_image():
    """SigLIP's resize_mode 'squash' resizes the whole image (no centre crop); CLIP's crops the centre."""
    import numpy as np
    from PIL import Image

    from radapter.data.transforms import eval_transform

    img = np.zeros((20, 40, 3), dtype=np.uint8)
    img[:, :10] = 255  # a white band at the left edge: kept by squash, cropped away by shortest+crop
    pil = Image.fromarray(img)
    squash = eval_transform(8, mean=(0, 0, 0), std=(1, 1, 1), resize_mode="squash")(pil)
    crop = eval_transform(8, mean=(0, 0, 0), std=(1, 1, 1))(pil)
    assert squash.shape == crop.shape == (3, 8, 8)
    assert squash[:, :, 0].mean() > 0.9 and crop[:, :, 0].mean() < 0.1
