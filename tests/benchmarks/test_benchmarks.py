"""The benchmarks never rot: every script's --smoke mode runs (tiny model, 2 steps) and writes exactly the
issue's JSON schema; they run the library's methods (the LoRA baseline is the library's and adapts what it
claims to); the tensor-memory probe counts exactly the bytes live; the FLOP count matches known numbers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "benchmarks")
SCRIPTS = (
    "common",
    "flops",
    "workload",
    "train_step",
    "inference",
    "merge",
    "pipeline",
    "precision",
    "memory",
    "gpu_check",
)

NUM = (int, float)
SCHEMAS = {
    "train_step": {
        "matmul_peak_gflops": float,
        "methods": {
            m: {
                "step_s": float,
                "images_per_s": float,
                "peak_rss_mb": float,
                "tensor_peak_mb": float,
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
        **{f"{v}_step_s": float for v in ("fp32", "bf16", "bf16_frozen")},
        **{f"demo_acc_{v}": (float, type(None)) for v in ("fp32", "bf16", "bf16_frozen")},
    },
}
MEMORY_VARIANT = {
    "step_s": float,
    "tensor_peak_mb": float,
    "tensor_persistent_mb": float,
    "activations_mb": float,
    "frozen_fp32_copy_mb": float,
    "peak_rss_mb": float,
    "trainable_params": int,
    "x_ft_time": float,
    "x_ft_tensor_peak": float,
    "x_ft_rss_net": float,
    "error": type(None),
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
    elif schema is bool:
        assert isinstance(data, bool), f"{where}: {data!r} is not a bool"
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
        # full fine-tuning holds gradients and AdamW state for every weight: the most tensor memory
        assert ms["full_ft"]["tensor_peak_mb"] > max(ms[m]["tensor_peak_mb"] for m in ("radapter", "lora"))


def test_memory_smoke_runs_every_variant(bench, tmp_path):
    out = tmp_path / "memory.json"
    bench["memory"].main(["--smoke", "--json", str(out)])
    data = json.loads(out.read_text())
    (name,) = data["configs"]
    conf = data["configs"][name]
    variants = bench["memory"].VARIANTS
    check_schema(
        conf,
        {
            "model": str,
            "batch": int,
            "variants": dict.fromkeys(variants, MEMORY_VARIANT),
            "targets": {
                "ckpt_memory_ratio": float,
                "ckpt_time_ratio": float,
                "ckpt_met": bool,
                "time_ratio": float,
                "time_met": bool,
            },
        },
    )
    v = conf["variants"]
    assert v["full_ft"]["x_ft_time"] == 1.0 and v["full_ft"]["x_ft_tensor_peak"] == 1.0
    for method in ("full_ft", "radapter", "lora"):  # checkpointing keeps less for the backward
        assert v[f"{method}+ckpt"]["activations_mb"] < v[method]["activations_mb"]
    # the bf16 hold casts the frozen matrices and keeps their fp32 originals (reported, and counted on a CPU)
    assert v["radapter+ckpt+bf16_frozen"]["frozen_fp32_copy_mb"] > 0
    assert all(v[n]["frozen_fp32_copy_mb"] == 0 for n in variants if n != "radapter+ckpt+bf16_frozen")
    held = v["radapter+ckpt+bf16_frozen"]
    assert held["tensor_persistent_mb"] == pytest.approx(
        v["radapter+ckpt+bf16"]["tensor_persistent_mb"] + held["frozen_fp32_copy_mb"] / 2, rel=0.02
    )  # bf16 matrices (half the fp32 bytes) + their fp32 copy = 1.5× the fp32 matrices


def test_memory_records_a_variant_that_fails(bench, monkeypatch):
    """A variant over the memory limit is reported with its error; the others still run."""
    M = bench["memory"]

    def failing(script, worker, args, name, keys):
        raise RuntimeError("worker failed:\nRuntimeError: DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(M.C, "run_variant", failing)
    res = M.run_one(M.argparse.Namespace(), "full_ft")
    assert "can't allocate memory" in res["error"]
    rows = M.summarize({"full_ft": [res], "radapter": [res]}, batch=8)
    assert rows["radapter"]["step_s"] is None and "allocate" in rows["radapter"]["error"]
    assert M.targets(rows)["ckpt_met"] is None


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


# --- the workloads are the library's -----------------------------------------------------------------------
def test_benchmark_methods_are_the_library_classes(bench):
    from radapter.methods import get_method
    from radapter.methods.lora import Lora

    W = bench["workload"]
    for name, overrides in W.METHODS.items():
        wl = W.build(W.run_config(name, smoke=True, batch=4))
        assert type(wl.method) is get_method(overrides["method.name"])
        assert wl.trainable_params() == sum(p.numel() for g in wl.optimizer.param_groups for p in g["params"])
    lora = W.build(W.run_config("lora", smoke=True, batch=4)).method
    assert isinstance(lora, Lora) and lora.cfg.method.lora.loss == "mpm_nce"


@pytest.mark.parametrize("method", ["radapter", pytest.param("full_ft", marks=pytest.mark.slow)])
def test_workload_step_is_the_trainer_step(bench, method, tmp_path):
    """Two steps of ``Workload.step`` on the trainer's batches give the very weights ``Trainer.fit`` gives."""
    from radapter.training import TrainData, Trainer
    from radapter.training.distributed import DistInfo
    from radapter.training.sampler import StepSampler

    W = bench["workload"]
    cfg = W.run_config(method, smoke=True, batch=4, extra={"optim.steps": 2})
    a, b = W.build(cfg), W.build(W.run_config(method, smoke=True, batch=4, extra={"optim.steps": 2}))
    torch.manual_seed(7)  # dropping masks
    Trainer(cfg, DistInfo(), str(tmp_path)).fit(
        a.method, TrainData(a.task.train_dataset(), a.task.train_size(), a.task.collate)
    )
    sampler = iter(StepSampler(b.task.train_size(), 4, cfg.seed, 2, 0, 0, 1))
    ds = b.task.train_dataset()
    b.model.train()
    torch.manual_seed(7)
    for _ in range(2):
        b.step(b.task.collate([ds[next(sampler)] for _ in range(4)]))
    got, want = b.method.state_dict(), a.method.state_dict()
    assert set(got) == set(want)
    for k in want:
        assert torch.allclose(got[k], want[k], rtol=1e-6, atol=1e-7), k
    fresh = W.build(W.run_config(method, smoke=True, batch=4, extra={"optim.steps": 2})).method.state_dict()
    moved = [k for k, v in b.method.state_dict().items() if not torch.equal(v, fresh[k])]
    assert moved, "nothing trained: the comparison would prove nothing"


def test_offline_tokenizer_is_deterministic_and_in_vocabulary(bench):
    import zlib

    tok = bench["workload"].OfflineTokenizer(context_length=8, vocab_size=100)
    ids = tok(["a photo of a cat.", "one two three four five six seven eight nine"])
    h = lambda w: 1 + zlib.crc32(w.encode()) % 98  # noqa: E731 - ids 1 … 98; 99 ends the text, 0 pads
    assert ids[0].tolist() == [h("a"), h("photo"), h("of"), h("a"), h("cat."), 99, 0, 0]
    assert ids[1].tolist() == [h(w) for w in "one two three four five six seven".split()] + [99]  # truncated
    assert torch.equal(tok(["a photo of a cat."])[0], ids[0])


@pytest.mark.slow
def test_siglip_from_its_config_needs_no_download(bench, monkeypatch):
    """``ViT-B-16-SigLIP`` (what gpu_check.sh trains) builds from open_clip's config with the offline tokenizer."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    W = bench["workload"]
    backbone = W.load_backbone(W.run_config("radapter", model="ViT-B-16-SigLIP", batch=2))
    assert isinstance(backbone.tokenizer, W.OfflineTokenizer) and backbone.tokenizer.context_length == 64
    assert backbone.image_size == 224 and backbone.model.logit_bias is not None


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
    """The library's LoRA (the benchmark's baseline) must change both towers' outputs through every target kind
    once its B is non-zero (a LoRA on MHA's out_proj alone would be dead: MHA never calls out_proj.forward)."""
    _, pattern = target
    W = bench["workload"]
    wl = W.build(W.run_config("lora", smoke=True, batch=2))
    model = wl.model.eval()
    images, tokens = wl.task.images(2), wl.backbone.tokenizer(wl.task.captions(2))
    cfg = W.model_config(smoke=True)
    with torch.no_grad():
        ref = model.encode_image(images), model.encode_text(tokens)
        bs = _lora_b(model, pattern)
        assert len(bs) == cfg["vision_cfg"]["layers"] + cfg["text_cfg"]["layers"]  # one per block of each tower
        for b in bs:
            b.weight.normal_(std=0.5)
        new = model.encode_image(images), model.encode_text(tokens)
    assert not torch.allclose(ref[0], new[0], atol=1e-4), "image tower unchanged"
    assert not torch.allclose(ref[1], new[1], atol=1e-4), "text tower unchanged"
    assert all("lora_" in n for n, p in model.named_parameters() if p.requires_grad)


# --- measurements --------------------------------------------------------------------------------------------
def test_tensor_memory_counts_the_bytes_live(bench):
    from torch.profiler import record_function

    C = bench["common"]
    mb = 2**20
    with C.TensorMemory() as mem:
        keep = torch.ones(mb // 4)  # 1 MiB, live throughout
        with record_function("radapter:forward"):
            saved = torch.ones(2 * mb // 4)  # 2 MiB kept for the "backward"
            tmp = torch.ones(3 * mb // 4)  # 3 MiB transient
            del tmp
        with record_function("radapter:backward"):
            grad = torch.ones(mb // 4)  # 1 MiB while `saved` is alive: 1 + 2 + 1 = 4 MiB
            del saved
        with record_function("radapter:optimizer"):
            del grad
    s = mem.step_summary()
    assert s["persistent_mb"] == 1.0
    assert s["activations_mb"] == 2.0
    assert s["peak_mb"] == 1.0 + 2.0 + 3.0  # keep + saved + tmp, inside the forward
    assert mem.peak() == 6 * mb and keep.numel() == mb // 4


def test_tensor_memory_of_a_step_is_weights_state_and_batch(bench):
    """What is live when a step starts is exactly the model's tensors, the optimizer state and the batch, even
    with another model's garbage freed during the block."""
    C, W = bench["common"], bench["workload"]
    for method in ("full_ft", "radapter"):
        junk = W.build(W.run_config("full_ft", smoke=True, batch=4))
        with C.TensorMemory() as mem:
            del junk  # freed inside the block: must not count against it
            wl = W.build(W.run_config(method, smoke=True, batch=4))
            batch = wl.task.batch(0)
            wl.step(batch)
            wl.step(batch)
        state = [v for st in wl.optimizer.state.values() for v in st.values() if torch.is_tensor(v)]
        tensors = [*wl.model.parameters(), *wl.model.buffers(), *state, batch.images, batch.labels]
        want = sum({t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}.values())
        assert mem.step_summary()["persistent_mb"] * 2**20 == want, method


def test_flop_count_matches_known_numbers(bench):
    F, W = bench["flops"], bench["workload"]
    cfg = W.model_config("ViT-B-16")
    # ViT-B/16 at 224 px: 17.6 GMAC per image (fvcore / timm report 17.58); 77-token text tower ~2.98 GMAC
    assert F.forward_flops(cfg, 1, "image") / 2e9 == pytest.approx(17.56, rel=0.01)
    assert F.forward_flops(cfg, 1, "text") / 2e9 == pytest.approx(2.98, rel=0.01)
    fwd = F.forward_flops(cfg, 8)
    stem = 8 * 2.0 * 196 * 768 * 768  # the patch convolution needs no input gradient
    shape = {m: F.step_shape(W.run_config(m)) for m in ("full_ft", "radapter", "radapter_r64", "lora")}
    full = F.train_step_flops(cfg, 8, shape["full_ft"])
    assert full == pytest.approx(3 * fwd - stem, rel=1e-4)
    ra, r64, lora = (F.train_step_flops(cfg, 8, shape[m]) for m in ("radapter", "radapter_r64", "lora"))
    assert r64 < lora < ra < full
    # frozen base: no weight gradients; adapters on the 80 % of token rows that dropping keeps
    assert ra / full == pytest.approx(0.794, abs=0.002) and r64 / full == pytest.approx(0.690, abs=0.002)
    # checkpointing re-runs every block's forward once (both towers, patch stem and projections excluded)
    ckpt = F.step_shape(W.run_config("full_ft", grad_checkpointing=True))
    blocks = fwd - 8 * 2.0 * (196 * 768 * 768 + 768 * 512 + 512 * 512)
    assert F.train_step_flops(cfg, 8, ckpt) - full == pytest.approx(blocks, rel=1e-6)
    # ft: the image tower only, plus a linear head of C classes
    ft = F.train_step_flops(cfg, 8, F.step_shape(W.run_config("ft"), head_classes=4))
    image = F.forward_flops(cfg, 8, "image")
    assert ft == pytest.approx(3 * image - stem + 3 * 2.0 * 8 * 4 * 512, rel=1e-6)


def test_alternated_rotates_the_order(bench):
    order = bench["common"].alternated(["a", "b", "c"], 3)
    assert [n for _, n in order] == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]


def test_peak_rss_reads_vmhwm(bench):
    C = bench["common"]
    assert C.peak_rss_mb() >= C.rss_mb() > 10.0


# --- the GPU check ---------------------------------------------------------------------------------------------
def test_gpu_check_cpu_smoke_passes_every_check(bench, tmp_path):
    out = tmp_path / "gpu_check.json"
    res = bench["gpu_check"].main(["--cpu-smoke", "--json", str(out)])
    data = json.loads(out.read_text())
    assert set(data["checks"]) == {"amp", "checkpointing", "frozen_bf16", "siglip"}
    failed = {k: v.get("trace", v.get("detail")) for k, v in data["checks"].items() if not v["ok"]}
    assert not failed, failed
    assert "refused" in data["checks"]["amp"]["fp16"]  # fp16 autocast needs CUDA: the library says so
    assert data["checks"]["siglip"]["merge_max_abs_diff"] <= 1e-4
    assert res["checks"]["checkpointing"]["radapter"]["worst_grad_rel_err"] <= 1e-4


def test_gpu_check_script_parses():
    subprocess.run(["bash", "-n", os.path.join(BENCH, "gpu_check.sh")], check=True)


@pytest.mark.slow
def test_gpu_check_script_cpu_smoke(tmp_path):
    """The whole script, every step on tiny models on the CPU (~50 s)."""
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path)}
    proc = subprocess.run(
        ["bash", os.path.join(BENCH, "gpu_check.sh"), "--cpu-smoke"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in ("gpu_check", "train_step", "memory", "inference", "precision"):
        assert (tmp_path / f"{name}.json").is_file(), name
