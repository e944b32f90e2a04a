"""The retrieval task end to end on tiny Karpathy-JSON and Flickr-TXT files: recall rows for both directions and
both sets, the counts, α = 0 = zero-shot exactly, deploy α 0.8, and methods that need class labels refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from radapter.cli.main import main

COLOURS = ["red", "green", "blue", "white", "black", "grey"]


def _images(root, names, seed):
    rng = np.random.default_rng(seed)
    for name in names:
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(root / name)


@pytest.fixture
def retrieval_files(tmp_path):
    root = tmp_path / "images"
    (root / "train2014").mkdir(parents=True)
    (root / "val2014").mkdir()
    images = []
    for i in range(12):
        split = "test" if i >= 9 else ("restval" if i % 4 == 0 else "train")
        folder = "val2014" if split != "train" else "train2014"
        n_caps = 7 if i == 10 else 5  # COCO has images with 6–7 captions: the first 5 are kept
        caps = [{"raw": f"a {COLOURS[i % 6]} square number {i} view {k}"} for k in range(n_caps)]
        images.append(
            {"filepath": folder, "filename": f"img{i}.png", "split": split, "cocoid": 100 + i, "sentences": caps}
        )
        _images(root / folder, [f"img{i}.png"], i)
    (tmp_path / "dataset_coco.json").write_text(json.dumps({"images": images}))
    flickr = tmp_path / "flickr"
    flickr.mkdir()
    _images(flickr, [f"{i}.jpg" for i in range(4)], 99)
    lines = ["image,caption"] + [
        f"{i}.jpg,a photo, with a comma, of thing {i} take {k}" for i in range(4) for k in range(5)
    ]
    (tmp_path / "flickr30k_test_karpathy.txt").write_text("\n".join(lines) + "\n")
    return tmp_path


def _args(tiny_open_clip_json, files, out, method, *extra):
    sets = (
        f"[{{name: coco, path: {files}/dataset_coco.json, image_root: {files}/images, split: test}}, "
        f"{{name: flickr, path: {files}/flickr30k_test_karpathy.txt, image_root: {files}/flickr}}]"
    )
    return [
        "train", "--config", "tiny_test", "--task", "retrieval", "--model", tiny_open_clip_json,
        "--data.kind", "karpathy", "--data.train", f"{files}/dataset_coco.json",
        "--data.retrieval.image_root", f"{files}/images", "--data.eval_sets", sets,
        "--method", method, "--out", str(out), *extra,
    ]  # fmt: skip


def _rows(out):
    return [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]


def test_retrieval_trains_and_reports_both_directions(tiny_open_clip_json, retrieval_files, tmp_path):
    out = tmp_path / "ra"
    assert main(_args(tiny_open_clip_json, retrieval_files, out, "radapter", "--optim.lr", "0.05")) == 0
    rows = _rows(out)
    assert [r["alpha"] for r in rows] == [0.0, 0.5, 0.8, 1.0]  # the deploy α of retrieval is 0.8
    assert [r["alpha"] for r in rows if r.get("default")] == [0.8]
    row = rows[0]
    assert row["metric"] == "R@1" and row["id_set"] == "coco" and row["ood_sets"] == ["flickr"]
    assert (row["coco:n_images"], row["coco:n_texts"]) == (3, 15)  # 7 captions truncated to 5
    assert (row["flickr:n_images"], row["flickr:n_texts"]) == (4, 20)
    for s in ("coco", "flickr"):
        for d in ("image_to_text", "text_to_image"):
            assert row[f"{s}:{d}:R@1"] <= row[f"{s}:{d}:R@5"] <= row[f"{s}:{d}:R@10"] <= 100
        assert row[f"{s}:R@1"] == pytest.approx((row[f"{s}:image_to_text:R@1"] + row[f"{s}:text_to_image:R@1"]) / 2)
    assert row["avg_ood:R@1"] == row["flickr:R@1"]
    assert "coco (ID)" in (out / "results.md").read_text()
    # train+restval is the default training split: 9 images (test excluded)
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 4


def test_alpha_zero_is_the_zero_shot_model_exactly(tiny_open_clip_json, retrieval_files, tmp_path):
    assert main(_args(tiny_open_clip_json, retrieval_files, tmp_path / "zs", "zeroshot")) == 0
    assert main(_args(tiny_open_clip_json, retrieval_files, tmp_path / "ra", "radapter", "--optim.lr", "0.05")) == 0
    (zs,) = _rows(tmp_path / "zs")
    ra = _rows(tmp_path / "ra")[0]
    keys = [k for k in zs if k.startswith(("coco:", "flickr:"))]
    assert keys and all(ra[k] == zs[k] for k in keys)


@pytest.mark.parametrize(
    ("method", "extra"), [("ft", []), ("lpft", []), ("radapter", ["--method.radapter.loss", "ce"])]
)
def test_methods_needing_class_labels_are_refused(
    method, extra, tiny_open_clip_json, retrieval_files, tmp_path, capsys
):
    assert main(_args(tiny_open_clip_json, retrieval_files, tmp_path / "x", method, *extra)) == 2
    assert "cannot train task 'retrieval'" in capsys.readouterr().err


def test_flyp_and_lora_train_on_pairs(tiny_open_clip_json, retrieval_files, tmp_path):
    for method in ("flyp", "lora"):
        out = tmp_path / method
        assert main(_args(tiny_open_clip_json, retrieval_files, out, method)) == 0
        assert "coco:text_to_image:R@1" in _rows(out)[0]


def test_an_eval_set_typo_and_a_missing_image_are_named(tiny_open_clip_json, retrieval_files, tmp_path, capsys):
    args = _args(tiny_open_clip_json, retrieval_files, tmp_path / "x", "radapter")
    i = args.index("--data.eval_sets") + 1
    args[i] = args[i].replace("split: test", "splt: test")
    assert main(args) == 2
    assert "data.eval_sets[0].splt" in capsys.readouterr().err
    (retrieval_files / "flickr" / "2.jpg").unlink()
    assert main(_args(tiny_open_clip_json, retrieval_files, tmp_path / "y", "radapter")) == 2
    assert "2.jpg" in capsys.readouterr().err


def test_wiseft_of_flyp_interpolates_both_towers(tiny_open_clip_json, retrieval_files, tmp_path):
    """WiSE-FT of a contrastive fine-tuning (retrieval has no class head): α = 0 is zero-shot, α = 1 is FLYP."""
    assert main(_args(tiny_open_clip_json, retrieval_files, tmp_path / "zs", "zeroshot")) == 0
    assert main(_args(tiny_open_clip_json, retrieval_files, tmp_path / "fl", "flyp", "--optim.lr", "0.01")) == 0
    extra = ["--method.wiseft.of", "flyp", "--method.wiseft.ft_model", str(tmp_path / "fl"), "--eval.alphas", "[0, 1]"]
    assert main(_args(tiny_open_clip_json, retrieval_files, tmp_path / "w", "wiseft", *extra)) == 0
    (zs,), (fl,) = _rows(tmp_path / "zs"), _rows(tmp_path / "fl")
    w = {r["alpha"]: r for r in _rows(tmp_path / "w")}
    keys = [k for k in zs if k.startswith(("coco:", "flickr:"))]
    assert all(w[0.0][k] == zs[k] for k in keys) and all(w[1.0][k] == fl[k] for k in keys)
    assert any(fl[k] != zs[k] for k in keys)
