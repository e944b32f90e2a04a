"""Tiny detectron2-layout segmentation trees and configs for the segmentation task tests (nothing is downloaded)."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

CLASSES = ["cat", "sofa, couch", "floor"]
COLOURS = np.array([[220, 40, 40], [40, 200, 60], [60, 60, 220]], dtype=np.float32)

# head sizes small enough for a tiny CLIP (4×4 patch grid); CAT-Seg's defaults are for ViT-B/16 at 384
TINY_HEAD = {
    "hidden_dim": 16,
    "num_layers": 1,
    "num_heads": 2,
    "window_size": 4,
    "pooling_size": 1,
    "text_proj_dim": 8,
    "appearance_proj_dim": 8,
    "decoder_dims": [16, 8],
    "decoder_guidance_dims": [8, 8],
    "decoder_guidance_proj_dims": [4, 4],
    "embed_kernel": 3,
    "mlp_ratio": 2.0,
}


def write_tree(
    root,
    n=6,
    size=(40, 48),
    seed=0,
    ignore=255,
    tiff=False,
    n_classes=3,
    image_sub="images",
    label_sub="labels",
    label_ids=None,
):
    """``root/images/*.jpg`` + ``root/labels/*.png`` (or 16-bit ``.tif``): class k is a block of colour k; a border
    and one stripe are ``ignore``; image 0's label is all ``ignore``. ``label_ids[k]``: the id written for class k
    (default k). Returns ``(image_dir, label_dir)``."""
    rng = np.random.default_rng(seed)
    images, labels = root / image_sub, root / label_sub
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    h, w = size
    for i in range(n):
        lab = np.zeros((h, w), dtype=np.int64)
        cut = rng.integers(w // 4, 3 * w // 4)
        lab[:, :cut] = rng.integers(n_classes)
        lab[:, cut:] = rng.integers(n_classes)
        lab[h // 2 :, : w // 3] = (i + 1) % n_classes
        img = COLOURS[lab % len(COLOURS)] + rng.normal(0, 12, (h, w, 3))
        lab[:2] = ignore
        lab[:, -3:-1] = ignore
        if label_ids is not None:
            lab = np.where(lab == ignore, ignore, np.asarray(label_ids)[np.minimum(lab, n_classes - 1)])
        if i == 0:
            lab[:] = ignore  # an all-ignore image: it must count for nothing
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(images / f"{i:04d}.jpg", quality=95)
        if tiff:
            Image.fromarray(lab.astype(np.uint16)).save(labels / f"{i:04d}.tif")
        else:
            Image.fromarray(lab.astype(np.uint8)).save(labels / f"{i:04d}.png")
    return str(images), str(labels)


def write_class_list(path, names=CLASSES, ignore_value: int | None = None) -> str:
    data = {"classes": list(names)}
    if ignore_value is not None:
        data["ignore_value"] = ignore_value
    path.write_text(json.dumps(data))
    return str(path)


def seg_config(tmp_path, model_json: str, method: str = "radapter", **extra) -> dict:
    """Overrides of a tiny segmentation run: a PNG training tree, a PNG eval set (ID) and a 16-bit TIFF one (OOD,
    ignore 65535)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    classes = write_class_list(tmp_path / "classes.json")
    tiff_classes = write_class_list(tmp_path / "classes16.json", ignore_value=65535)
    train = write_tree(tmp_path / "train", n=8, seed=0)
    val = write_tree(tmp_path / "val", n=4, seed=1)
    shift = write_tree(tmp_path / "shift", n=3, seed=2, ignore=65535, tiff=True)
    out = {
        "task": "segmentation",
        "model.name": model_json,
        "model.pretrained": "none",
        "method.name": method,
        "data.kind": "detectron2",
        "data.workers": 0,
        "data.segmentation.classes": classes,
        "data.segmentation.image_dir": train[0],
        "data.segmentation.label_dir": train[1],
        "data.segmentation.crop_size": 32,
        "data.segmentation.input_size": 32,
        "data.segmentation.templates": "simple",
        "data.segmentation.head": TINY_HEAD,
        "data.segmentation.clip_lr_scale": 0.1,
        "data.eval_sets": [
            {"name": "val", "image_dir": val[0], "label_dir": val[1], "classes": classes},
            {"name": "shift", "image_dir": shift[0], "label_dir": shift[1], "classes": tiff_classes},
        ],
        "optim.lr": 0.01,
        "optim.batch_size": 4,
        "optim.steps": 4,
        "optim.warmup_steps": 1,
        "method.radapter.ema_momentum": 0.5,
        "eval.alphas": [0.0, 1.0],
        "eval.batch_size": 4,
        "progress": False,
    }
    out.update(extra)
    return out


def as_argv(overrides: dict) -> list[str]:
    argv = []
    for k, v in overrides.items():
        argv += [f"--{k}", v if isinstance(v, str) else json.dumps(v)]
    return argv
