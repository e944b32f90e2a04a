"""The benchmarks never rot: every script's --smoke mode runs (tiny model, 2 steps) and writes exactly the
issue's JSON schema; the LoRA baseline really adapts what it claims to; the FLOP count matches known numbers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "benchmarks")
SCRIPTS = ("common", "train_step", "inference", "merge", "pipeline", "precision")

NUM = (int, float)
SCHEMAS = {
    "train_step": {
        "matmul_peak_gflops": float,
        "methods": {
            m: {
                "step_s": float,
                "images_per_s": float,
                "peak_rss_mb": float,
                "trainable_params": int,
                "gflops": float,
                "mfu": float,
            }
            for m in ("full_ft", "radapter", "radapter_r64", "lora")
        },
    },
    "inference": {v: {"images_per_s": float, "texts_per_s": float} for v in ("base", "merged", "unmerged")},
    "merge": {k: float for k in ("merge_s", "sweep_s", "sweep_merge_s", "sweep_head_s", "sweep_images_s")},
    "pipeline": {"model_only_images_per_s": float, "end_to_end_images_per_s": float},
    "precision": {
        "fp32_step_s": float,
        "bf16_step_s": float,
        "demo_acc_fp32": (float, type(None)),
        "demo_acc_bf16": (float, type(None)),
    },
}


@pytest.fixture(scope="module")
def bench():
    """The benchmark scripts as modules (they import each other by plain name from benchmarks/); removed from
    sys.modules and sys.path afterwards so their generic names cannot shadow anything in other tests."""
    sys.path.insert(0, BENCH)
    saved = {name: sys.modules.pop(name) for name in SCRIPTS if name in sys.modules}
    try:
        mods = {name: __import__(name) for name in SCRIPTS}
        yield mods
    finally:
        for name in SCRIPTS:
            sys.modules.pop(name, None)
        sys.modules.update(saved)
        sys.path.remove(BENCH)


def check_schema(data, schema, where="$"):
    if isinstance(schema, dict):
        assert isinstance(data, dict), f"{where}: expected an object, got {type(data).__name__}"
        assert set(data) == set(schema), f"{where}: keys {sorted(data)} != {sorted(schema)}"
        for key, sub in schema.items():
            check_schema(data[key], sub, f"{where}.{key}")
    else:
        assert isinstance(data, schema) and not isinstance(data, bool), f"{where}: {data!r} is not {schema}"
        if isinstance(data, float):
            assert data == data and data >= 0.0, f"{where}: {data!r}"  # not NaN, not negative


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_smoke_writes_the_issue_schema(bench, name, tmp_path):
    out = tmp_path / f"{name}.json"
    bench[name].main(["--smoke", "--json", str(out)])
    data = json.loads(out.read_text())
    check_schema(data, SCHEMAS[name])
    if name == "merge":
        parts = data["sweep_merge_s"] + data["sweep_head_s"] + data["sweep_images_s"]
        assert parts <= data["sweep_s"] * 1.0001
    if name == "train_step":
        ms = data["methods"]
        assert ms["full_ft"]["trainable_params"] > max(ms[m]["trainable_params"] for m in ("radapter", "lora"))


@pytest.mark.slow
def test_train_step_cli_runs_each_method_in_a_subprocess(tmp_path):
    """The real command line and the worker protocol (one fresh interpreter per method and round)."""
    out = tmp_path / "ts.json"
    cmd = [
        sys.executable,
        os.path.join(BENCH, "train_step.py"),
        "--smoke",
        "--subprocess",
        "--methods",
        "radapter",
        "--json",
        str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "radapter" in proc.stdout and "MFU" in proc.stdout
    data = json.loads(out.read_text())
    assert set(data["methods"]) == {"radapter"}
    assert data["methods"]["radapter"]["peak_rss_mb"] > 50.0  # a real VmHWM of the worker, not the parent's


def _lora_b(model, pattern):
    return [m for n, m in model.named_modules() if n.endswith("lora_B.default") and pattern(n)]


@pytest.mark.parametrize(
    "target",
    {
        "attn in_proj": lambda n: n.endswith(".attn.lora_B.default"),
        "attn out_proj": lambda n: ".attn.base_layer.out_proj." in n,
        "mlp c_fc": lambda n: ".c_fc." in n,
        "mlp c_proj": lambda n: ".c_proj." in n,
    }.items(),
    ids=lambda t: t[0] if isinstance(t, tuple) else str(t),
)
def test_lora_targets_are_live(bench, target):
    """peft LoRA must change both towers' outputs through every target kind once its B is non-zero (a LoRA
    on MHA's out_proj alone would be dead: MHA never calls out_proj.forward)."""
    _, pattern = target
    C = bench["common"]
    cfg = C.model_config(smoke=True)
    images, tokens, _ = C.make_batch(cfg, 2)
    model = C.apply_lora(C.build_model(smoke=True)).eval()
    with torch.no_grad():
        ref = model.encode_image(images), model.encode_text(tokens)
        bs = _lora_b(model, pattern)
        n_blocks = cfg["vision_cfg"]["layers"] + cfg["text_cfg"]["layers"]
        assert len(bs) == n_blocks  # one per block of each tower
        for b in bs:
            b.weight.normal_(std=0.5)
        new = model.encode_image(images), model.encode_text(tokens)
    assert not torch.allclose(ref[0], new[0], atol=1e-4), "image tower unchanged"
    assert not torch.allclose(ref[1], new[1], atol=1e-4), "text tower unchanged"
    assert all("lora_" in n for n, p in model.named_parameters() if p.requires_grad)


def test_flop_count_matches_known_numbers(bench):
    C = bench["common"]
    cfg = C.model_config(smoke=False)
    # ViT-B/16 at 224 px: 17.6 GMAC per image (fvcore / timm report 17.58); 77-token text tower ~2.98 GMAC
    assert C.forward_flops(cfg, 1, "image") / 2e9 == pytest.approx(17.56, rel=0.01)
    assert C.forward_flops(cfg, 1, "text") / 2e9 == pytest.approx(2.98, rel=0.01)
    fwd = C.forward_flops(cfg, 8)
    stem = 8 * 2.0 * 196 * 768 * 768  # the patch convolution needs no input gradient
    full = C.train_step_flops(cfg, 8, "full_ft")
    assert full == pytest.approx(3 * fwd - stem, rel=1e-4)
    ra, r64, lora = (C.train_step_flops(cfg, 8, m) for m in ("radapter", "radapter_r64", "lora"))
    assert r64 < lora < ra < full
    # frozen base: no weight gradients; adapters on the 80 % of token rows that dropping keeps
    assert ra / full == pytest.approx(0.794, abs=0.002) and r64 / full == pytest.approx(0.690, abs=0.002)


def test_alternated_rotates_the_order(bench):
    order = bench["common"].alternated(["a", "b", "c"], 3)
    assert [n for _, n in order] == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]


def test_peak_rss_reads_vmhwm(bench):
    C = bench["common"]
    assert C.peak_rss_mb() >= C.rss_mb() > 10.0


def test_gpu_check_script_parses():
    subprocess.run(["bash", "-n", os.path.join(BENCH, "gpu_check.sh")], check=True)
