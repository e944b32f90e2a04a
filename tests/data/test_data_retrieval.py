"""Retrieval annotation readers, ImageTextSet and the retrieval Datasets, on tiny copies of each format."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tiny_images import write_image
from torchvision import transforms as T

from radapter.data.base import DatasetLayoutError
from radapter.data.retrieval import (
    ImageTextSet,
    RetrievalImages,
    RetrievalTrainPairs,
    load_image_text_set,
    read_caption_csv,
    read_caption_jsonl,
    read_coco_captions,
    read_flickr_txt,
    read_karpathy_json,
)


def sentences(prefix: str, n: int) -> list[dict]:
    return [{"raw": f"{prefix} caption {k} ", "tokens": ["x"], "sentid": k} for k in range(n)]


@pytest.fixture
def karpathy_coco(tmp_path):
    """A dataset_coco.json with two folders and every split; image 3 has 7 sentences."""
    entries = []
    for i, (folder, split) in enumerate(
        [("val2014", "test"), ("val2014", "test"), ("train2014", "train"), ("val2014", "restval"), ("val2014", "val")]
    ):
        name = f"COCO_{folder}_{i:012d}.jpg"
        write_image(tmp_path / "coco" / folder / name, color=(i * 40, 0, 0))
        n = 7 if i == 3 else 6 if i == 1 else 5
        entries.append(
            {
                "filepath": folder,
                "filename": name,
                "split": split,
                "sentences": sentences(f"img{i}", n),
                "cocoid": 100 + i,
                "imgid": i,
            }
        )
    path = tmp_path / "dataset_coco.json"
    path.write_text(json.dumps({"images": entries, "dataset": "coco"}))
    return path, tmp_path / "coco"


def test_karpathy_coco_test_split_keeps_the_first_five_captions(karpathy_coco):
    path, root = karpathy_coco
    ds = read_karpathy_json(path, root, split="test")
    assert ds.name == "coco_test"
    assert ds.image_ids == [100, 101]
    assert ds.image_paths == [
        str(root / "val2014" / "COCO_val2014_000000000000.jpg"),
        str(root / "val2014" / "COCO_val2014_000000000001.jpg"),
    ]
    assert ds.captions[1] == [f"img1 caption {k}" for k in range(5)]  # 6 given, first 5 kept, stripped
    assert (ds.n_images, ds.n_texts) == (2, 10)
    assert ds.counts() == {"n_images": 2, "n_texts": 10}


def test_karpathy_train_plus_restval_and_all_captions(karpathy_coco):
    path, root = karpathy_coco
    ds = read_karpathy_json(path, root, split="train+restval", captions_per_image="all")
    assert ds.image_ids == [102, 103]
    assert [len(c) for c in ds.captions] == [5, 7]
    assert ds.image_paths[0] == str(root / "train2014" / "COCO_train2014_000000000002.jpg")
    assert read_karpathy_json(path, root, split=["val"]).image_ids == [104]


def test_karpathy_flickr_has_no_filepath_and_uses_imgid(tmp_path):
    for i in range(2):
        write_image(tmp_path / "flickr" / f"{1000 + i}.jpg")
    entries = [
        {"filename": f"{1000 + i}.jpg", "split": "test", "sentences": sentences("f", 5), "imgid": i} for i in range(2)
    ]
    entries.append(
        {"filename": "9.jpg", "split": "train", "sentences": sentences("t", 5), "imgid": 2}
    )  # no file: not read
    path = tmp_path / "dataset_flickr30k.json"
    path.write_text(json.dumps({"images": entries, "dataset": "flickr30k"}))
    ds = read_karpathy_json(path, tmp_path / "flickr")
    assert ds.name == "flickr30k_test" and ds.image_ids == [0, 1]
    assert ds.image_paths == [str(tmp_path / "flickr" / "1000.jpg"), str(tmp_path / "flickr" / "1001.jpg")]


def test_karpathy_errors_name_the_problem(karpathy_coco, tmp_path):
    path, root = karpathy_coco
    with pytest.raises(
        DatasetLayoutError, match="image 100 \\(COCO_val2014_000000000000.jpg\\) has 5 caption\\(s\\), 7 asked for"
    ) as info:
        read_karpathy_json(path, root, captions_per_image=7)
    assert str(path) in str(info.value)
    with pytest.raises(ValueError, match="unknown Karpathy split"):
        read_karpathy_json(path, root, split="train+dev")
    with pytest.raises(ValueError, match="positive integer or 'all'"):
        read_karpathy_json(path, root, captions_per_image=0)
    (root / "val2014" / "COCO_val2014_000000000001.jpg").unlink()
    with pytest.raises(
        DatasetLayoutError,
        match="1 of 2 image files not found .*; the first is .*/val2014/COCO_val2014_000000000001.jpg",
    ):
        read_karpathy_json(path, root)
    read_karpathy_json(path, root, check_files=False)  # the check can be skipped
    only_train = tmp_path / "train_only.json"
    only_train.write_text(json.dumps({"images": [{"filename": "a.jpg", "split": "train", "sentences": []}]}))
    with pytest.raises(
        DatasetLayoutError, match="no images in split test; images per split in the file: \\{'train': 1\\}"
    ):
        read_karpathy_json(only_train, root)


def test_coco_caption_format(tmp_path):
    for i in range(3):
        write_image(tmp_path / "val2014" / f"COCO_val2014_{i}.jpg")
    images = [{"id": 30 + i, "file_name": f"val2014/COCO_val2014_{i}.jpg"} for i in range(3)]
    anns = [{"id": k, "image_id": 30 + (k % 3), "caption": f"c{k}"} for k in range(16)]  # interleaved; image 30 gets 6
    path = tmp_path / "coco_test_karpathy.json"
    path.write_text(json.dumps({"images": images, "annotations": anns}))
    ds = read_coco_captions(path, tmp_path)
    assert ds.image_ids == [30, 31, 32]
    assert ds.captions[0] == ["c0", "c3", "c6", "c9", "c12"]  # annotation order, first 5 of 6
    assert ds.captions[1] == ["c1", "c4", "c7", "c10", "c13"]
    assert ds.image_paths[2] == str(tmp_path / "val2014" / "COCO_val2014_2.jpg")
    assert load_image_text_set(path, tmp_path).captions == ds.captions  # auto: COCO format
    anns.append({"image_id": 99, "caption": "stray"})
    path.write_text(json.dumps({"images": images, "annotations": anns}))
    with pytest.raises(DatasetLayoutError, match="annotations\\[16\\] refers to image id 99"):
        read_coco_captions(path, tmp_path)


def test_flickr_txt_captions_with_commas(tmp_path):
    for name in ("1007129816.jpg", "2.JPG"):
        write_image(tmp_path / "images" / name)
    lines = ["image,caption"]
    lines += [f"1007129816.jpg,The man, with pierced ears, wears glasses {k}." for k in range(5)]
    lines += ['2.JPG,"A dog, ""running"", outside."'] + [f"2.JPG,dog {k}" for k in range(4)]
    path = tmp_path / "flickr30k_test_karpathy.txt"
    path.write_text("\n".join(lines) + "\n")
    ds = read_flickr_txt(path, tmp_path / "images")
    assert ds.image_ids == ["1007129816.jpg", "2.JPG"]
    assert ds.captions[0][0] == "The man, with pierced ears, wears glasses 0."
    assert ds.captions[1][0] == 'A dog, "running", outside.'
    assert (ds.n_images, ds.n_texts) == (2, 10)
    assert load_image_text_set(path, tmp_path / "images").texts == ds.texts
    path.write_text("image,caption\n1007129816.jpg,ok\nno image here\n")
    with pytest.raises(DatasetLayoutError, match="line 3: expected '<image file>,<caption>'"):
        read_flickr_txt(path, tmp_path / "images", captions_per_image=1)


def test_caption_tsv_groups_rows_into_images(tmp_path):
    for i in range(3):
        write_image(tmp_path / "imgs" / f"{i}.png")
    path = tmp_path / "train.csv"
    path.write_text(
        "filepath\ttitle\timage_id\n"
        "imgs/0.png\tzero a\t7\nimgs/1.png\tone a\t8\nimgs/0.png\tzero b\t7\nimgs/2.png\ttwo a\t9\nimgs/1.png\tone b\t8\n"
    )
    ds = read_caption_csv(path, group_key="image_id")
    assert ds.image_ids == ["7", "8", "9"]
    assert ds.captions == [["zero a", "zero b"], ["one a", "one b"], ["two a"]]  # default "all"
    assert ds.image_paths[0] == str(tmp_path / "imgs" / "0.png")
    assert read_caption_csv(path).captions == ds.captions  # grouped by path without a group column
    with pytest.raises(DatasetLayoutError, match="image 9 \\(2.png\\) has 1 caption\\(s\\), 2 asked for"):
        read_caption_csv(path, captions_per_image=2, group_key="image_id")
    assert load_image_text_set(path).captions == ds.captions  # auto: TAB found in the header
    comma = tmp_path / "pairs.csv"
    comma.write_text("path,text,g\nimgs/0.png,hello,a\nimgs/2.png,bye,a\n")
    with pytest.raises(DatasetLayoutError, match="group 'a' has image 'imgs/2.png'"):
        read_caption_csv(comma, sep=",", img_key="path", caption_key="text", group_key="g")
    with pytest.raises(DatasetLayoutError, match="missing caption column 'title'"):
        read_caption_csv(comma, sep=",", img_key="path")


def test_caption_jsonl(tmp_path):
    for i in range(2):
        write_image(tmp_path / f"{i}.png")
    path = tmp_path / "pairs.jsonl"
    rows = [
        {"image": "0.png", "caption": "first", "group": 5},
        {"image": "1.png", "caption": "second"},
        {"image": "0.png", "caption": "first again", "group": 5},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    ds = read_caption_jsonl(path)
    assert ds.image_ids == [5, "1.png"] and ds.captions == [["first", "first again"], ["second"]]
    assert load_image_text_set(path).n_texts == 3
    path.write_text('{"image": "0.png"}\n')
    with pytest.raises(DatasetLayoutError, match="line 1: expected"):
        read_caption_jsonl(path)
    path.write_text('{"image": "0.png", "caption": "x"}\n{"image": "1.png", "caption": "y", "group": [1]}\n')
    with pytest.raises(DatasetLayoutError, match="line 2: 'group' must be a string or an integer"):
        read_caption_jsonl(path)


def test_image_text_set_flattening_and_subset():
    pixels = np.zeros((3, 4, 4, 3), dtype=np.uint8)
    pixels[1] = 200
    ds = ImageTextSet.from_arrays("toy", pixels, [["a", "b"], ["c"], ["d", "e", "f"]])
    assert ds.texts == ["a", "b", "c", "d", "e", "f"]
    assert ds.text_to_image.tolist() == [0, 0, 1, 2, 2, 2]
    assert ds.load_image(1).getpixel((0, 0)) == (200, 200, 200)
    sub = ds.subset([2, 1])
    assert sub.captions == [["d", "e", "f"], ["c"]] and sub.text_to_image.tolist() == [0, 0, 0, 1]
    assert sub.image_ids == [2, 1] and sub.load_image(1).getpixel((0, 0)) == (200, 200, 200)
    assert "toy: 3 images, 6 captions (1-3 per image)" in ds.describe()
    with pytest.raises(ValueError, match="images without captions"):
        ImageTextSet.from_arrays("bad", pixels, [["a"], [], ["b"]])


def test_retrieval_images_each_image_once(karpathy_coco):
    path, root = karpathy_coco
    ds = RetrievalImages(read_karpathy_json(path, root), transform=T.ToTensor())
    assert len(ds) == 2
    image, index = ds[1]
    assert index == 1 and image.shape == (3, 6, 8)
    assert image[0, 0, 0].item() == pytest.approx(40 / 255)


def test_train_pairs_are_a_function_of_the_item_key():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(4, 16, 16, 3), dtype=np.uint8)
    data = ImageTextSet.from_arrays("train", pixels, [[f"img{i} cap{k}" for k in range(5)] for i in range(4)])
    augment = T.Compose([T.RandomResizedCrop(12, scale=(0.3, 1.0)), T.ToTensor()])
    pairs = RetrievalTrainPairs(data, augment)
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    a = pairs[(2, 0, 777)]
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is untouched
    b = pairs[(2, 5, 777)]  # same seed (resumed run, another worker): same item
    assert torch.equal(a[0], b[0]) and a[1] == b[1] and a[2] == b[2] == 2
    assert a[1].startswith("img2 ")
    items = [pairs[(2, 0, s)] for s in range(60)]
    assert {caption for _, caption, _ in items} == set(data.captions[2])  # one caption per visit, all reachable
    assert not all(torch.equal(items[0][0], x) for x, _, _ in items[1:])  # augmentation varies with the seed
    assert pairs.groups == [0, 1, 2, 3]
