"""The memory options and the sigmoid loss through a real run: activation checkpointing trains the same adapters,
bf16 frozen weights train and evaluate with the fp32 weights, SigLIP's loss is selectable."""

from __future__ import annotations

import json

import torch

from conftest import tiny_train_args
from radapter.cli.main import main
from radapter.utils import load_safetensors


def _adapter(run):
    return load_safetensors(str(run / "adapter" / "adapter_model.safetensors"))


def test_checkpointing_trains_the_same_adapters(tiny_open_clip_json, tiny_folders, tmp_path):
    extra = ["--optim.lr", "0.02"]
    assert main(tiny_train_args(tiny_open_clip_json, tiny_folders, tmp_path / "a", "radapter", *extra)) == 0
    args = [*extra, "--optim.grad_checkpointing", "true"]
    assert main(tiny_train_args(tiny_open_clip_json, tiny_folders, tmp_path / "b", "radapter", *args)) == 0
    a, b = _adapter(tmp_path / "a"), _adapter(tmp_path / "b")
    assert any(v.abs().sum() > 0 for k, v in a.items() if k.endswith(".weight"))
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-6), k


def test_bf16_frozen_weights_train_and_evaluate_in_fp32(tiny_open_clip_json, tiny_folders, tmp_path, capsys):
    run = tmp_path / "bf16"
    args = ["--optim.precision", "bf16", "--optim.frozen_dtype", "bf16", "--optim.lr", "0.02"]
    assert main(tiny_train_args(tiny_open_clip_json, tiny_folders, run, "radapter", *args)) == 0
    merged = load_safetensors(str(run / "merged" / "open_clip_model.safetensors"))
    assert all(v.dtype == torch.float32 for v in merged.values() if v.is_floating_point())
    rows = [json.loads(x) for x in (run / "results.jsonl").read_text().splitlines()]
    zs = tmp_path / "zs"
    assert main(tiny_train_args(tiny_open_clip_json, tiny_folders, zs, "zeroshot")) == 0
    (zero,) = [json.loads(x) for x in (zs / "results.jsonl").read_text().splitlines()]
    # α = 0 is the fp32 base model again, exactly: the bf16 copy was only held while training
    assert rows[0]["alpha"] == 0.0 and rows[0]["test:top1"] == zero["test:top1"]
    capsys.readouterr()
    bad = ["--optim.frozen_dtype", "bf16"]
    assert main(tiny_train_args(tiny_open_clip_json, tiny_folders, tmp_path / "x", "radapter", *bad)) == 2
    assert "need low-precision compute" in capsys.readouterr().err


def test_the_sigmoid_loss_is_selectable(tiny_open_clip_json, tiny_folders, tmp_path):
    run = tmp_path / "sig"
    assert (
        main(tiny_train_args(tiny_open_clip_json, tiny_folders, run, "radapter", "--method.radapter.loss", "sigmoid"))
        == 0
    )
    losses = [json.loads(x)["loss"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 4 and all(v > 0 for v in losses)
