"""Method internals: LoRA targets are live, WiSE-FT interpolation, LP-FT's delayed schedule."""

from __future__ import annotations

import pytest
import torch

import radapter
from conftest import BUILDERS, sample_inputs
from radapter.methods.ft import interpolate_state
from radapter.methods.lora import apply_lora
from radapter.training.schedule import build_scheduler, param_groups, warmup_cosine


def test_every_lora_target_is_live(backbone_kind):
    """Each LoRA layer, made non-zero alone, changes its tower's output (none is silently bypassed)."""
    pytest.importorskip("peft")
    model = BUILDERS[backbone_kind]()
    lora = apply_lora(model, r=2, alpha=4.0, dropout=0.0)
    images, tokens = sample_inputs(backbone_kind)

    def outputs():
        with torch.no_grad():
            return radapter.encode_image(model, images), radapter.encode_text(model, tokens)

    ref_img, ref_txt = outputs()
    b_params = [(n, p) for n, p in lora.model.named_parameters() if "lora_B" in n]
    assert b_params and all(p.requires_grad for _, p in b_params)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert all("lora_" in n for n in trainable)
    for name, p in b_params:
        with torch.no_grad():
            p.normal_(0, 0.5)
        img, txt = outputs()
        out, ref = (img, ref_img) if ("visual" in name or "vision_model" in name) else (txt, ref_txt)
        assert not torch.allclose(out, ref, atol=1e-6), f"LoRA layer {name} has no effect"
        with torch.no_grad():
            p.zero_()
    if backbone_kind == "open_clip":
        # attention is adapted through peft's MultiheadAttention support, never through a bare out_proj
        assert any(".attn.lora_B" in n for n, _ in b_params)


def test_wiseft_interpolation_endpoints():
    zero = {"w": torch.zeros(3), "n": torch.tensor(5)}
    tuned = {"w": torch.ones(3), "n": torch.tensor(7)}
    assert torch.equal(interpolate_state(zero, tuned, 0.0)["w"], zero["w"])
    assert torch.equal(interpolate_state(zero, tuned, 1.0)["w"], tuned["w"])
    assert torch.allclose(interpolate_state(zero, tuned, 0.3)["w"], torch.full((3,), 0.3))
    assert interpolate_state(zero, tuned, 0.3)["n"].item() == 7


def test_schedule_warmup_cosine_and_delayed_group():
    assert warmup_cosine(0, 10, 100) == pytest.approx(0.1)
    assert warmup_cosine(9, 10, 100) == pytest.approx(1.0)
    assert warmup_cosine(100, 10, 100) == pytest.approx(0.0, abs=1e-12)
    w = torch.nn.Parameter(torch.zeros(2, 2))
    b = torch.nn.Parameter(torch.zeros(2))
    groups = param_groups([("w", w), ("b", b)], lr=1.0, weight_decay=0.1)
    assert groups[0]["weight_decay"] == 0.1 and groups[1]["weight_decay"] == 0.0  # no decay on 1-D tensors
    opt = torch.optim.AdamW(groups)
    sched = build_scheduler(opt, warmup=2, total=10, starts=[0, 5])
    lrs = []
    for _ in range(10):
        lrs.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    assert all(lr[1] == 0.0 for lr in lrs[:5]) and lrs[5][1] > 0 and lrs[0][0] > 0
