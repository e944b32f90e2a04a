"""The trainer end to end on a tiny ImageFolder: every method, results schema, α sweep endpoints,
exact resumption, 2-process DDP = 1 process, exported model accuracy, faults."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import tiny_train_args
from radapter.cli.main import main
from radapter.utils import load_safetensors

METHODS = ["zeroshot", "ft", "lpft", "flyp", "wiseft", "lora", "radapter"]


def _rows(run):
    return [json.loads(line) for line in open(os.path.join(run, "results.jsonl"))]


@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_and_reports(method, tiny_open_clip_json, tiny_folders, tmp_path):
    out = tmp_path / method
    assert main(tiny_train_args(tiny_open_clip_json, tiny_folders, out, method)) == 0
    rows = _rows(out)
    assert rows
    for row in rows:
        assert row["method"] == method and row["seed"] == 0
        for name in ("test", "shiftA", "shiftB"):
            assert 0.0 <= row[f"{name}:top1"] <= 100.0 and row[f"{name}:top5"] >= row[f"{name}:top1"]
        assert row["id_set"] == "test" and row["ood_sets"] == ["shiftA", "shiftB"]
        assert row["avg_ood:top1"] == pytest.approx((row["shiftA:top1"] + row["shiftB:top1"]) / 2)
        assert isinstance(row["trainable_params"], int) and isinstance(row["config"], dict)
        assert row["step"] == (0 if method == "zeroshot" else 4)
    if method in ("radapter", "wiseft"):
        assert [r["alpha"] for r in rows] == [0.0, 0.5, 1.0]
    assert (out / "results.md").exists() and (out / "id_vs_ood.png").stat().st_size > 1000
    if method != "zeroshot":
        assert len([json.loads(x) for x in open(out / "metrics.jsonl")]) == 4


def test_alpha_zero_reproduces_zero_shot_exactly(tiny_open_clip_json, tiny_folders, tmp_path):
    assert main(tiny_train_args(tiny_open_clip_json, tiny_folders, tmp_path / "zs", "zeroshot")) == 0
    assert (
        main(tiny_train_args(tiny_open_clip_json, tiny_folders, tmp_path / "ra", "radapter", "--optim.lr", "0.05")) == 0
    )
    zs = _rows(tmp_path / "zs")[0]
    ra = {r["alpha"]: r for r in _rows(tmp_path / "ra")}
    keys = [k for k in zs if k.endswith(":top1") or k.endswith(":top5")]
    assert all(ra[0.0][k] == zs[k] for k in keys)
    # and training did something: the adapter moved the fine-tuned endpoint
    adapters = load_safetensors(str(tmp_path / "ra" / "adapter" / "adapter_model.safetensors"))
    assert any(v.abs().sum() > 0 for k, v in adapters.items() if k.endswith(".ema_weight"))


def test_exported_merged_model_gives_the_evaluated_accuracy(tiny_open_clip_json, tiny_folders, tmp_path):
    import open_clip

    import radapter
    from radapter.data import EvalSet, ImageFolderDataset, eval_transform
    from radapter.evaluation import evaluate_classifier

    out = tmp_path / "ra"
    assert main(tiny_train_args(tiny_open_clip_json, tiny_folders, out, "radapter", "--optim.lr", "0.05")) == 0
    row = next(r for r in _rows(out) if r["alpha"] == 0.5)
    model, _, _ = open_clip.create_model_and_transforms(f"local-dir:{out / 'merged'}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{out / 'merged'}")
    ds = ImageFolderDataset(tiny_folders / "shiftB", transform=eval_transform(32))
    res = evaluate_classifier(
        model,
        [EvalSet("shiftB", ds, ds.classnames)],
        tokenizer=tokenizer,
        classnames=ds.classnames,
        templates=radapter.zeroshot.SIMPLE_IMAGENET_TEMPLATES,
    )
    assert res["shiftB:top1"] == pytest.approx(row["shiftB:top1"])


def test_resume_after_kill_equals_uninterrupted(tiny_open_clip_json, tiny_folders, tmp_path):
    extra = ["--optim.steps", "6", "--checkpoint_every", "2", "--optim.lr", "0.02"]
    full = tmp_path / "full"
    assert main(tiny_train_args(tiny_open_clip_json, tiny_folders, full, "radapter", *extra)) == 0

    # a real kill -9 in the middle of the run (a subprocess that dies right after its step-4 checkpoint)
    killed = tmp_path / "killed"
    args = tiny_train_args(tiny_open_clip_json, tiny_folders, killed, "radapter", *extra)
    code = (
        "import os, sys\n"
        "import radapter.training.checkpoint as ck\n"
        "orig = ck.save_checkpoint\n"
        "def save(run_dir, step, *a, **k):\n"
        "    path = orig(run_dir, step, *a, **k)\n"
        "    if step == 4:\n"
        "        os.kill(os.getpid(), 9)\n"
        "    return path\n"
        "ck.save_checkpoint = save\n"
        "import radapter.training.trainer as tr\n"
        "tr.save_checkpoint = save\n"
        "from radapter.cli.main import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert not (killed / "results.jsonl").exists()
    assert main(args + ["--resume"]) == 0

    a = load_safetensors(str(full / "adapter" / "adapter_model.safetensors"))
    b = load_safetensors(str(killed / "adapter" / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("config", "train_seconds")} for r in rows]  # noqa: E731
    assert strip(_rows(full)) == strip(_rows(killed))
    losses = lambda run: [json.loads(x)["loss"] for x in open(run / "metrics.jsonl")]  # noqa: E731
    assert losses(full) == losses(killed)[:4] + losses(killed)[4:]
    assert losses(full)[4:] == losses(killed)[-2:]


def test_existing_run_needs_resume(tiny_open_clip_json, tiny_folders, tmp_path, capsys):
    args = tiny_train_args(tiny_open_clip_json, tiny_folders, tmp_path / "r", "zeroshot")
    assert main(args) == 0
    assert main(tiny_train_args(tiny_open_clip_json, tiny_folders, tmp_path / "r2", "radapter")) == 0
    assert main(tiny_train_args(tiny_open_clip_json, tiny_folders, tmp_path / "r2", "radapter")) == 2
    assert "--resume" in capsys.readouterr().err


def test_config_typo_names_key_and_suggestion(tiny_open_clip_json, tiny_folders, tmp_path, capsys):
    args = tiny_train_args(tiny_open_clip_json, tiny_folders, tmp_path / "r", "radapter", "--optim.lrr", "1")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "optim.lrr" in err and "optim.lr" in err
    assert (
        main(
            tiny_train_args(tiny_open_clip_json, tiny_folders, tmp_path / "r", "radapter", "--optim.batch_size", "abc")
        )
        == 2
    )
    assert "optim.batch_size: expected an integer" in capsys.readouterr().err
    assert not (tmp_path / "r" / "results.jsonl").exists()


def test_corrupt_image_is_named_or_skipped(tiny_open_clip_json, tiny_folders, tmp_path, capsys):
    bad = tiny_folders / "train" / "cat" / "broken.png"
    bad.write_bytes(b"not a png at all")
    args = tiny_train_args(tiny_open_clip_json, tiny_folders, tmp_path / "r", "radapter", "--optim.steps", "12")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "broken.png" in err and "--data.skip_corrupt true" in err
    assert not (tmp_path / "r" / "results.jsonl").exists()
    assert (
        main(
            tiny_train_args(
                tiny_open_clip_json, tiny_folders, tmp_path / "r2", "radapter", "--data.skip_corrupt", "true"
            )
        )
        == 0
    )


def test_nan_loss_stops_and_keeps_last_checkpoint(tiny_open_clip_json, tiny_folders, tmp_path, monkeypatch):
    from radapter.methods.radapter import RAdapterMethod
    from radapter.training import TrainingDiverged
    from radapter.training.checkpoint import latest_checkpoint

    orig = RAdapterMethod.loss
    calls = {"n": 0}

    def loss(self, *a):
        calls["n"] += 1
        value = orig(self, *a)
        return value * float("nan") if calls["n"] == 3 else value

    monkeypatch.setattr(RAdapterMethod, "loss", loss)
    args = tiny_train_args(tiny_open_clip_json, tiny_folders, tmp_path / "r", "radapter", "--checkpoint_every", "1")
    with pytest.raises(TrainingDiverged, match="at step 3"):
        main(args)
    assert latest_checkpoint(str(tmp_path / "r")).endswith("step_0000002")


def test_sweep_eval_merge_verify_plot_commands(tiny_open_clip_json, tiny_folders, tmp_path, capsys):
    run = tmp_path / "ra"
    assert (
        main(
            tiny_train_args(
                tiny_open_clip_json,
                tiny_folders,
                run,
                "radapter",
                "--optim.lr",
                "0.05",
                "--data.holdout_fraction",
                "0.25",
            )
        )
        == 0
    )
    assert main(["sweep", "--run", str(run), "--alphas", "0,0.25,0.5,0.75,1"]) == 0
    rows = [json.loads(x) for x in open(run / "sweep.jsonl")]
    assert [r["alpha"] for r in rows] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert sum(1 for r in rows if r.get("selected") == "holdout") == 1
    assert sum(1 for r in rows if r.get("default")) == 1
    assert main(["eval", "--run", str(run), "--alpha", "0.3"]) == 0
    assert [json.loads(x)["alpha"] for x in open(run / "eval.jsonl")] == [0.3]
    assert main(["merge", "--run", str(run), "--alpha", "0.3", "--out", str(tmp_path / "m")]) == 0
    assert (tmp_path / "m" / "open_clip_config.json").exists()
    capsys.readouterr()
    assert main(["verify", "--run", str(run)]) == 0
    report = json.loads(capsys.readouterr().out.split("\nOK")[0])
    assert report["image_max_abs_diff"] <= 1e-5 and report["text_finite"]
    assert main(["plot", str(run / "results.jsonl"), str(run / "sweep.jsonl"), "--out", str(tmp_path / "p")]) == 0
    assert (tmp_path / "p" / "id_vs_ood.png").exists()


@pytest.mark.distributed
@pytest.mark.slow
def test_two_process_gloo_run_equals_one_process(tiny_open_clip_json, tiny_folders, tmp_path):
    """torchrun with 2 CPU processes (4 images each) ends with the weights of 1 process on batch 8."""
    import socket

    extra = ["--optim.steps", "3", "--optim.lr", "0.02", "--method.radapter.drop_prob", "0.0"]
    one = tmp_path / "one"
    assert main(tiny_train_args(tiny_open_clip_json, tiny_folders, one, "radapter", *extra)) == 0
    two = tmp_path / "two"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(port),
        "-m",
        "radapter.cli.main",
        *tiny_train_args(tiny_open_clip_json, tiny_folders, two, "radapter", *extra),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = load_safetensors(str(one / "adapter" / "adapter_model.safetensors"))
    b = load_safetensors(str(two / "adapter" / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    assert any(v.abs().sum() > 0 for k, v in a.items() if k.endswith(".weight"))
    for k in a:
        # summation order differs across processes; Adam turns that float noise into ~1e-6 weight differences
        assert torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-5), (k, (a[k] - b[k]).abs().max())


def test_hf_clip_model_trains_and_exports(tiny_hf_dir, tiny_folders, tmp_path):
    """`--model hf:PATH` runs the same trainer; the merged export loads with CLIPModel.from_pretrained."""
    from transformers import CLIPModel

    import radapter

    out = tmp_path / "hf"
    args = tiny_train_args("unused", tiny_folders, out, "radapter", "--optim.lr", "0.05", "--pretrained", "default")
    args[args.index("--model") + 1] = f"hf:{tiny_hf_dir}"
    assert main(args) == 0
    rows = _rows(out)
    assert [r["alpha"] for r in rows] == [0.0, 0.5, 1.0]
    plain = CLIPModel.from_pretrained(str(out / "merged")).eval()
    loaded = radapter.load_model(f"hf:{tiny_hf_dir}")
    adapted = radapter.load_adapter(loaded.model, str(out / "adapter")).eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(radapter.encode_image(plain, images), radapter.encode_image(adapted, images), atol=1e-5)
