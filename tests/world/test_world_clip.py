"""The shipped world CLIP loads with plain open_clip and reproduces its recorded zero-shot accuracy."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from radapter.data.world.clip import WORLD_CLIP_DIR, zero_shot_accuracy
from radapter.data.world.generate import fixed_eval_sample

RECORD = WORLD_CLIP_DIR / "world_clip.json"
WEIGHTS = WORLD_CLIP_DIR / "open_clip_model.safetensors"
pytestmark = pytest.mark.skipif(not WEIGHTS.exists(), reason="world CLIP not pretrained yet")


@pytest.fixture(scope="module")
def record():
    return json.loads(RECORD.read_text())


@pytest.fixture(scope="module")
def loaded():
    import open_clip

    name = f"local-dir:{WORLD_CLIP_DIR}"
    model, _, preprocess = open_clip.create_model_and_transforms(name)
    return model.eval(), preprocess, open_clip.get_tokenizer(name)


def test_checkpoint_is_small_and_native(loaded, record):
    from open_clip.model import CLIP
    from open_clip.transformer import ResidualAttentionBlock

    model, _, tokenizer = loaded
    assert WEIGHTS.stat().st_size <= 15 * 2**20
    assert WEIGHTS.stat().st_size == record["checkpoint_bytes"]
    assert isinstance(model, CLIP)
    blocks = [m for m in model.modules() if isinstance(m, ResidualAttentionBlock)]
    assert len(blocks) == record["model_cfg"]["vision_cfg"]["layers"] + record["model_cfg"]["text_cfg"]["layers"]
    assert all(isinstance(b.attn, torch.nn.MultiheadAttention) for b in blocks)
    assert tokenizer("a photo of a star.").shape == (1, record["model_cfg"]["text_cfg"]["context_length"])
    assert next(model.parameters()).dtype == torch.float32


def test_preprocess_config(loaded):
    from radapter.data.world.datasets import WORLD_MEAN, WORLD_STD

    model, _, _ = loaded
    cfg = model.visual.preprocess_cfg
    assert cfg["size"] in (32, (32, 32)) and tuple(cfg["mean"]) == WORLD_MEAN and tuple(cfg["std"]) == WORLD_STD


def test_recorded_zero_shot_targets(record):
    held = record["zero_shot"]["heldout"]
    assert held["accuracy"]["avg"] >= 50.0
    assert held["spread"] <= 15.0


def test_fixed_sample_accuracy_reproduces(loaded, record):
    model, _, tokenizer = loaded
    fixed = fixed_eval_sample()
    expected = record["zero_shot"]["fixed_sample"]
    # if this fails, the generator changed and the recorded accuracy no longer applies
    assert hashlib.sha256(fixed.images.tobytes()).hexdigest() == expected["images_sha256"]
    acc = zero_shot_accuracy(model, tokenizer, fixed)
    # same machine: bit-identical; other CPUs' kernels may flip at most a borderline image
    assert acc["avg"] == pytest.approx(expected["accuracy"]["avg"], abs=0.5)
    for key, value in expected["accuracy"].items():
        assert acc[key] == pytest.approx(value, abs=2.5), key  # one image of ~43 per domain
