"""Reading images: RGB conversion, CorruptImageError naming the file, corrupt-image scans."""

from __future__ import annotations

import pickle

import pytest
from PIL import Image
from tiny_images import write_image

from radapter.data import CorruptImageError, SkippedImages, check_image, load_image, scan_images
from radapter.data.images import is_image_file


def test_load_image_returns_rgb_for_grey_palette_and_alpha(tmp_path):
    for mode in ("L", "P", "RGBA"):
        path = write_image(tmp_path / f"{mode}.png", size=(5, 4), mode=mode)
        image = load_image(path)
        assert image.mode == "RGB"
        assert image.size == (5, 4)


def test_garbage_jpg_raises_corrupt_image_error_naming_the_file(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"this is not a jpeg at all" * 10)
    with pytest.raises(CorruptImageError) as info:
        load_image(bad)
    assert isinstance(info.value, ValueError)
    assert str(bad) in str(info.value)
    assert info.value.path == str(bad)
    assert "UnidentifiedImageError" in info.value.reason


def test_truncated_png_raises(tmp_path):
    good = write_image(tmp_path / "full.png", size=(64, 64))
    cut = tmp_path / "cut.png"
    cut.write_bytes(good.read_bytes()[:60])
    with pytest.raises(CorruptImageError, match="cut.png"):
        load_image(cut)
    assert check_image(cut) is not None
    assert check_image(good) is None


def test_missing_file_is_a_corrupt_image_error_saying_not_found(tmp_path):
    with pytest.raises(CorruptImageError, match="file not found") as info:
        load_image(tmp_path / "nowhere.png")
    assert "nowhere.png" in str(info.value)


def test_corrupt_image_error_survives_pickling_for_dataloader_workers(tmp_path):
    error = CorruptImageError(tmp_path / "a.jpg", "truncated")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.path, copy.reason, str(copy)) == (error.path, error.reason, str(error))


@pytest.mark.parametrize("workers", [0, 3])
def test_scan_images_reports_bad_files_in_order(tmp_path, workers):
    paths = []
    for i in range(6):
        path = tmp_path / f"{i}.jpg"
        if i in (1, 4):
            path.write_bytes(b"\x00garbage")
        else:
            # PNG content under a .jpg name is still a readable image: the extension is not trusted.
            write_image(path)
        paths.append(path)
    bad = scan_images(paths, progress=False, num_workers=workers)
    assert [path for path, _ in bad] == [str(paths[1]), str(paths[4])]


def test_skipped_images_message_counts_and_names():
    report = SkippedImages([(f"/d/{i}.jpg", "truncated") for i in range(7)])
    text = report.message(max_items=2)
    assert text.startswith("skipped 7 corrupt images: /d/0.jpg (truncated), /d/1.jpg (truncated)")
    assert text.endswith("... and 5 more")
    assert len(report) == 7 and report.paths[0] == "/d/0.jpg"
    assert str(SkippedImages()) == "skipped 0 corrupt images" and not SkippedImages()


def test_image_extensions_are_case_insensitive():
    assert all(is_image_file(name) for name in ("a.JPEG", "b.jpg", "c.Png", "d.bmp", "e.WEBP", "f.jpeg"))
    assert not any(is_image_file(name) for name in ("a.txt", "b.gif", "jpg", "c.jpg.bak"))


def test_loaded_image_is_detached_from_the_file(tmp_path):
    path = write_image(tmp_path / "x.png")
    image = load_image(path)
    path.unlink()  # the pixels were decoded eagerly, so the image no longer needs the file
    assert image.getpixel((0, 0)) == (200, 30, 30)
    assert isinstance(image, Image.Image)


def _folder_with_bad_files(root):
    from tiny_images import make_class_tree

    make_class_tree(root, {"a": 3, "b": 2})
    (root / "a" / "zz_bad.jpg").write_bytes(b"\x00garbage")
    good = (root / "b" / "img000.png").read_bytes()
    (root / "b" / "cut.png").write_bytes(good[:40])
    return root


def test_scan_images_takes_a_dataset_and_returns_path_and_reason(tmp_path):
    from radapter.data.folders import ImageFolderDataset

    ds = ImageFolderDataset(_folder_with_bad_files(tmp_path))
    bad = scan_images(ds, progress=False, num_workers=2)
    assert [path for path, _ in bad] == [str(tmp_path / "a" / "zz_bad.jpg"), str(tmp_path / "b" / "cut.png")]
    assert all(isinstance(reason, str) and reason for _, reason in bad)
    assert len(ds) == 7  # scanning does not change the dataset


def test_scan_images_reads_subsets_eval_sets_and_checks_a_file_listed_twice_once(tmp_path):
    from torch.utils.data import Subset

    from radapter.data.base import ImageSampleDataset
    from radapter.data.folders import ImageFolderDataset
    from radapter.data.shifts import EvalSet

    ds = ImageFolderDataset(_folder_with_bad_files(tmp_path))
    bad_index = ds.paths.index(str(tmp_path / "a" / "zz_bad.jpg"))
    subset = Subset(ds, [0, bad_index])
    assert [p for p, _ in scan_images(subset, progress=False)] == [str(tmp_path / "a" / "zz_bad.jpg")]
    eval_set = EvalSet("x", Subset(ds, [0, 1]), ["a", "b"])
    assert scan_images(eval_set, progress=False) == []
    # A caption CSV lists each image several times; the file is decoded once and reported once.
    twice = ImageSampleDataset([(ds.paths[bad_index], 0)] * 3, ["a"])
    calls = []
    import radapter.data.images as images

    original = images.check_image
    images.check_image = lambda path: calls.append(path) or original(path)
    try:
        assert len(scan_images(twice, progress=False, num_workers=0)) == 1
    finally:
        images.check_image = original
    assert len(calls) == 1


def test_scan_images_shows_a_progress_bar(tmp_path, capsys):
    ds_root = _folder_with_bad_files(tmp_path)
    paths = sorted(str(p) for p in ds_root.rglob("*.*"))
    scan_images(paths, progress=True, desc="checking pets", num_workers=0)
    err = capsys.readouterr().err
    assert "checking pets" in err and "/7 " in err  # the bar counts the 7 files


def test_scan_images_refuses_what_has_no_files():
    with pytest.raises(TypeError, match="cannot list the image files of int"):
        scan_images(3, progress=False)


def test_16_bit_images_are_scaled_not_clipped_to_white(tmp_path):
    import numpy as np

    values = (np.arange(32 * 32, dtype=np.uint32).reshape(32, 32) * 64).astype(np.uint16)  # 0 .. 65472
    Image.fromarray(values).save(tmp_path / "deep.png")
    rgb = np.asarray(load_image(tmp_path / "deep.png"))
    assert rgb.shape == (32, 32, 3) and (rgb[..., 0] == rgb[..., 1]).all()
    np.testing.assert_allclose(rgb[..., 0], values / 257.0, atol=1.0)  # 65535 -> 255, linearly
