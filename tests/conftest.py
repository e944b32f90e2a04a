"""Tiny random-init backbones shared by the tests (nothing is downloaded)."""

from __future__ import annotations

import json

import pytest
import torch

TINY_OPEN_CLIP_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 48, "patch_size": 8, "head_width": 24},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


def make_open_clip(seed: int = 0):
    from open_clip.model import CLIP

    torch.manual_seed(seed)
    model = CLIP(**json.loads(json.dumps(TINY_OPEN_CLIP_CFG)))
    model.radapter_base_info = {
        "library": "open_clip",
        "name": "tiny",
        "model_cfg": TINY_OPEN_CLIP_CFG,
        "preprocess_cfg": {"size": 32},
    }
    return model.eval()


def hf_clip_config(vocab_size: int = 99, bos: int = 0, eos: int = 2, pad: int = 1):
    from transformers import CLIPConfig

    return CLIPConfig(
        text_config={
            "vocab_size": vocab_size,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 16,
            "bos_token_id": bos,
            "eos_token_id": eos,
            "pad_token_id": pad,
        },
        vision_config={
            "image_size": 32,
            "patch_size": 8,
            "hidden_size": 40,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
        },
        projection_dim=24,
    )


def make_hf_clip(seed: int = 0):
    from transformers import CLIPModel

    torch.manual_seed(seed)
    return CLIPModel(hf_clip_config()).eval()


BUILDERS = {"open_clip": make_open_clip, "hf": make_hf_clip}


def sample_inputs(kind: str, batch: int = 3, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, 3, 32, 32, generator=g)
    if kind == "open_clip":
        tokens = torch.randint(1, 1000, (batch, 16), generator=g)
        tokens[:, -1] = 49407  # EOT: open_clip pools at the argmax token id
    else:
        tokens = torch.randint(3, 98, (batch, 16), generator=g)
        tokens[:, -1] = 2  # EOS id of the tiny config
    return images, tokens


@pytest.fixture(params=sorted(BUILDERS))
def backbone_kind(request):
    return request.param


@pytest.fixture
def tiny_open_clip_json(tmp_path):
    path = tmp_path / "tiny-clip.json"
    path.write_text(json.dumps(TINY_OPEN_CLIP_CFG))
    return str(path)


def write_image_folder(root, classes=("cat", "dog", "fish"), per_class=8, seed=0, shift=0.0, size=40):
    """Tiny class-coloured PNGs: class k is a blob of hue k; ``shift`` adds noise and inverts some images."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for k, name in enumerate(classes):
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = np.zeros((size, size, 3), dtype=np.float32)
            img[..., k % 3] = 0.8
            img += rng.normal(0, 0.1 + shift, img.shape)
            if shift and i % 2:
                img = 1 - img
            Image.fromarray((np.clip(img, 0, 1) * 255).astype("uint8")).save(d / f"{i}.png")
    return root


@pytest.fixture
def tiny_folders(tmp_path):
    """A training ImageFolder, an ID test set and two shifted sets."""
    data = tmp_path / "data"
    write_image_folder(data / "train", per_class=8, seed=0)
    write_image_folder(data / "test", per_class=4, seed=1)
    write_image_folder(data / "shiftA", per_class=4, seed=2, shift=0.3)
    write_image_folder(data / "shiftB", per_class=4, seed=3, shift=0.6)
    return data


def tiny_train_args(tiny_open_clip_json, data, out, method="radapter", *extra):
    eval_sets = (
        f"[{{name: test, path: {data}/test, kind: imagefolder, ood: false}}, "
        f"{{name: shiftA, path: {data}/shiftA, kind: imagefolder}}, {{name: shiftB, path: {data}/shiftB, kind: imagefolder}}]"
    )
    return [
        "train",
        "--config",
        "tiny_test",
        "--model",
        tiny_open_clip_json,
        "--data.train",
        f"{data}/train",
        "--data.eval_sets",
        eval_sets,
        "--method",
        method,
        "--out",
        str(out),
        *extra,
    ]


@pytest.fixture
def tiny_hf_dir(tmp_path):
    """A Hugging Face CLIPModel + CLIPTokenizer folder (tiny letter-level vocabulary) written by the test."""
    import string

    from transformers import CLIPModel, CLIPTokenizer

    d = tmp_path / "hf-tiny"
    d.mkdir()
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in list(string.ascii_lowercase) + ["."]:
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    (d / "vocab.json").write_text(json.dumps(vocab))
    (d / "merges.txt").write_text("#version: 0.2\n")
    CLIPTokenizer(str(d / "vocab.json"), str(d / "merges.txt"), pad_token="<|endoftext|>").save_pretrained(d)
    torch.manual_seed(0)
    CLIPModel(hf_clip_config(vocab_size=len(vocab), eos=1, pad=1)).save_pretrained(d)
    return str(d)
