"""Run records that never lie, and a CLI that behaves on interrupts and odd input (issue 14)."""

from __future__ import annotations

import json
import logging
import os
import stat

import pytest
import torch

from conftest import tiny_train_args
from radapter.cli.main import main


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def _interrupt_at(monkeypatch, step_index):
    from radapter.methods.radapter import RAdapterMethod

    orig = RAdapterMethod.after_step

    def after_step(self, step):
        orig(self, step)
        if step == step_index:
            raise KeyboardInterrupt

    monkeypatch.setattr(RAdapterMethod, "after_step", after_step)


def test_ctrl_c_says_where_to_resume_and_resume_never_logs_a_step_twice(
    tiny_open_clip_json, tiny_folders, tmp_path, monkeypatch, capsys
):
    extra = ["--optim.steps", "8", "--checkpoint_every", "2", "--optim.lr", "0.02"]
    full = tmp_path / "full"
    assert main(tiny_train_args(tiny_open_clip_json, tiny_folders, full, "radapter", *extra)) == 0
    run = tmp_path / "cut"
    args = tiny_train_args(tiny_open_clip_json, tiny_folders, run, "radapter", *extra)
    with monkeypatch.context() as m:
        _interrupt_at(m, 5)  # in the 6th step, after step 5 was logged; the last checkpoint is step 4
        capsys.readouterr()
        assert main(args) == 130
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0, "one line, no traceback"
    assert "step_0000004" in err and f"--out {run}" in err and err.rstrip().endswith("--resume")
    assert [r["step"] for r in _lines(run / "metrics.jsonl")] == [1, 2, 3, 4, 5]
    assert main(args + ["--resume"]) == 0
    steps = [r["step"] for r in _lines(run / "metrics.jsonl")]
    assert steps == [1, 2, 3, 4, 5, 6, 7, 8]
    assert [r["loss"] for r in _lines(run / "metrics.jsonl")] == [r["loss"] for r in _lines(full / "metrics.jsonl")]


def test_resume_refuses_overrides_that_change_what_was_trained(tiny_open_clip_json, tiny_folders, tmp_path, capsys):
    run = tmp_path / "r"
    args = tiny_train_args(tiny_open_clip_json, tiny_folders, run, "radapter")
    assert main(args) == 0
    config, results = (run / "config.yaml").read_text(), (run / "results.jsonl").read_text()
    capsys.readouterr()
    assert main(args + ["--resume", "--optim.lr", "0.01"]) == 2
    err = capsys.readouterr().err
    assert "optim.lr: 0.001 → 0.01" in err
    assert (run / "config.yaml").read_text() == config and (run / "results.jsonl").read_text() == results
    # evaluation settings may change: the record then describes the same model evaluated differently
    assert main(args + ["--resume", "--eval.alphas", "[0.25]"]) == 0
    assert (run / "config.yaml").read_text() == config


def test_resume_only_resumes_and_auto_resume_starts(tiny_open_clip_json, tiny_folders, tmp_path, capsys):
    args = tiny_train_args(tiny_open_clip_json, tiny_folders, tmp_path / "new", "zeroshot")
    assert main(args + ["--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err and not (tmp_path / "new" / "results.jsonl").exists()
    assert main(args + ["--auto-resume"]) == 0 and (tmp_path / "new" / "results.jsonl").exists()


def test_run_files_get_the_umask_mode(tiny_open_clip_json, tiny_folders, tmp_path):
    old = os.umask(0o022)
    try:
        run = tmp_path / "r"
        assert main(tiny_train_args(tiny_open_clip_json, tiny_folders, run, "radapter")) == 0
    finally:
        os.umask(old)
    for name in ("results.jsonl", "config.yaml", "results.md", "task.json", "adapter/adapter_config.json"):
        assert stat.S_IMODE((run / name).stat().st_mode) == 0o644, name


def test_verbose_is_radapters_own_debug_output():
    assert main(["-v", "presets"]) == 0
    assert logging.getLogger("radapter").isEnabledFor(logging.DEBUG)
    assert not logging.getLogger("PIL.PngImagePlugin").isEnabledFor(logging.DEBUG)
    main(["presets"])
    assert not logging.getLogger("radapter").isEnabledFor(logging.DEBUG)


def test_data_check_lists_every_unreadable_image(tiny_open_clip_json, tiny_folders, tmp_path, capsys):
    args = tiny_train_args(tiny_open_clip_json, tiny_folders, tmp_path / "r", "radapter")
    check = ["data", "check", *args[1 : args.index("--method")]]
    assert main(check) == 0
    assert "train: 24 items, 0 unreadable" in capsys.readouterr().out
    (tiny_folders / "train" / "cat" / "broken.png").write_bytes(b"not a png")
    (tiny_folders / "shiftB" / "dog" / "bad.png").write_bytes(b"")
    assert main(check) == 1
    out = capsys.readouterr().out
    assert "broken.png" in out and "bad.png" in out and "train: 25 items, 1 unreadable" in out
    # and the same scan can stop a run before it trains
    assert main(args + ["--data.check_images", "true"]) == 2
    err = capsys.readouterr().err
    assert "2 unreadable image(s)" in err and not (tmp_path / "r" / "metrics.jsonl").exists()


def test_sweep_default_grid_is_the_documented_one(tiny_open_clip_json, tiny_folders, tmp_path):
    run = tmp_path / "r"
    assert main(tiny_train_args(tiny_open_clip_json, tiny_folders, run, "radapter")) == 0  # eval.alphas: 0, .5, 1
    assert main(["sweep", "--run", str(run)]) == 0
    assert [r["alpha"] for r in _lines(run / "sweep.jsonl")] == [round(0.1 * i, 1) for i in range(11)]


def test_plot_counts_a_repeated_measurement_once(tiny_open_clip_json, tiny_folders, tmp_path):
    run = tmp_path / "r"
    assert main(tiny_train_args(tiny_open_clip_json, tiny_folders, run, "radapter", "--optim.lr", "0.05")) == 0
    assert main(["sweep", "--run", str(run), "--alphas", "0,0.5"]) == 0
    assert main(["plot", str(run / "results.jsonl"), str(run / "sweep.jsonl"), "--out", str(tmp_path / "p")]) == 0
    table = (tmp_path / "p" / "results.md").read_text()
    assert "± 0.0" not in table


def test_threads_flag_sets_torchs_threads(tiny_open_clip_json, tiny_folders, tmp_path):
    before = torch.get_num_threads()
    try:
        args = tiny_train_args(tiny_open_clip_json, tiny_folders, tmp_path / "r", "zeroshot", "--threads", "1")
        assert main(args) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_pretrained_is_honoured_or_refused_for_folder_models(tiny_open_clip_json, tiny_folders, tmp_path, capsys):
    """'default' loads a local-dir folder's weights, 'none' initialises its architecture randomly, a tag is refused."""
    import radapter
    from conftest import make_open_clip
    from radapter.runs import resolve_pretrained

    folder = tmp_path / "model"
    radapter.export_merged(make_open_clip(3), str(folder))
    base = tiny_train_args(tiny_open_clip_json, tiny_folders, tmp_path / "x", "zeroshot")
    base[base.index("--model") + 1] = f"local-dir:{folder}"
    assert main([*base, "--pretrained", "laion2b"]) == 2
    assert "pretrained 'laion2b' cannot apply" in capsys.readouterr().err
    for tag in ("default", "none"):  # both load: the folder's weights, or its architecture initialised randomly
        args = [*base, "--pretrained", tag]
        args[args.index("--out") + 1] = str(tmp_path / tag)
        assert main(args) == 0
    loaded = radapter.load_model(f"local-dir:{folder}", "none")
    assert loaded.info["pretrained"] == "none"
    assert not torch.equal(loaded.model.visual.conv1.weight, make_open_clip(3).visual.conv1.weight)
    assert resolve_pretrained("ViT-B-16", "default") == "openai"
    with pytest.raises(radapter.ConfigError, match="webli"):
        resolve_pretrained("ViT-B-16-SigLIP", "default")
