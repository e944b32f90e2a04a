"""Dataset wrappers match open_clip's preprocessing; the ImageFolder writer round-trips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from radapter.data.world.datasets import (
    WORLD_MEAN,
    WORLD_STD,
    WorldCaptionDataset,
    WorldDataset,
    images_to_tensor,
    write_image_folder,
    write_splits,
)
from radapter.data.world.generate import generate


@pytest.fixture(scope="module")
def samples():
    return generate(n=60, seed=9)


def test_dataset_items(samples):
    ds = WorldDataset(samples)
    x, y = ds[5]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and y == samples.labels[5]
    xs, ys = ds.tensors()
    torch.testing.assert_close(xs[5], x)
    assert torch.equal(ys, torch.from_numpy(samples.labels))
    assert ds.classes == list(samples.spec.classes)
    img, caption = WorldCaptionDataset(samples)[3]
    assert caption == samples.captions[3] and img.shape == (3, 32, 32)


def test_matches_open_clip_preprocess(samples):
    from open_clip.transform import image_transform

    preprocess = image_transform(32, is_train=False, mean=WORLD_MEAN, std=WORLD_STD)
    ds = WorldDataset(samples, transform=preprocess)
    direct = images_to_tensor(samples.images[:8])
    via_pil = torch.stack([ds[i][0] for i in range(8)])
    torch.testing.assert_close(via_pil, direct, atol=1e-6, rtol=0)


def test_image_folder_round_trip(samples, tmp_path):
    from torchvision.datasets import ImageFolder

    root = write_image_folder(samples, tmp_path / "world")
    folder = ImageFolder(str(root))
    assert folder.classes == list(samples.spec.classes)
    assert len(folder) == len(samples)
    # file names carry the sample index, so each image can be matched back
    for path, label in folder.samples:
        i = int(path.rsplit("/", 1)[1].removesuffix(".png"))
        assert label == samples.labels[i]
        np.testing.assert_array_equal(np.asarray(folder.loader(path)), samples.images[i])
    assert (root / "classnames.txt").read_text().split() == list(samples.spec.classes)
    rows = (root / "captions.tsv").read_text().splitlines()
    assert len(rows) == len(samples) + 1 and rows[1].split("\t")[1] == samples.captions[0]


def test_write_splits(tmp_path):
    from radapter.data.world.generate import downstream_benchmark

    splits = downstream_benchmark(seed=1, n_train=20, n_test=10)
    paths = write_splits(splits, tmp_path)
    assert set(paths) == set(splits)
    for name, path in paths.items():
        assert path == tmp_path / name and len(list(path.glob("*/*.png"))) == len(splits[name])


def test_radapter_image_folder_reads_it(samples, tmp_path):
    folders = pytest.importorskip("radapter.data.folders")
    root = write_image_folder(samples, tmp_path / "world")
    ds = folders.ImageFolderDataset(root)
    assert ds.classnames == list(samples.spec.classes)
    for path, label in zip(ds.paths, ds.targets):
        assert label == samples.labels[int(str(path).rsplit("/", 1)[1].removesuffix(".png"))]
