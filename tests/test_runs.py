"""A run's deploy α and EMA choice are the ones merge, verify, export and the model card use; user errors are
one line while bugs keep their traceback."""

from __future__ import annotations

import json

import pytest

from conftest import tiny_train_args
from radapter.cli.main import main
from radapter.utils import load_safetensors


def _rows(run):
    return [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]


def _weights(folder):
    return load_safetensors(str(folder / "open_clip_model.safetensors"))


def test_deploy_alpha_is_one_field_that_every_output_agrees_with(tiny_open_clip_json, tiny_folders, tmp_path, capsys):
    run = tmp_path / "ra"
    args = ["--optim.lr", "0.05", "--eval.alpha", "0.8"]
    assert main(tiny_train_args(tiny_open_clip_json, tiny_folders, run, "radapter", *args)) == 0
    rows = _rows(run)
    assert [r["alpha"] for r in rows] == [0.0, 0.5, 0.8, 1.0]  # the sweep plus the deploy α
    assert [r["alpha"] for r in rows if r.get("default")] == [0.8]
    assert json.loads((run / "merged" / "radapter_merge.json").read_text())["alpha"] == 0.8
    card = (run / "merged" / "README.md").read_text()
    assert "merged at α = 0.8" in card and "`alpha`" not in card
    adapter_cfg = json.loads((run / "adapter" / "adapter_config.json").read_text())
    assert adapter_cfg["config"]["alpha"] == 0.8
    # `merge --run` with no --alpha writes the run's own merged model, bit for bit
    assert main(["merge", "--run", str(run), "--out", str(tmp_path / "m")]) == 0
    a, b = _weights(run / "merged"), _weights(tmp_path / "m")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    assert "α=0.8" in capsys.readouterr().out


def test_merge_and_verify_follow_the_runs_ema_choice(tiny_open_clip_json, tiny_folders, tmp_path, capsys):
    run = tmp_path / "live"
    args = ["--optim.lr", "0.05", "--method.radapter.use_ema", "false"]
    assert main(tiny_train_args(tiny_open_clip_json, tiny_folders, run, "radapter", *args)) == 0
    assert main(["merge", "--run", str(run), "--out", str(tmp_path / "m")]) == 0
    a, b = _weights(run / "merged"), _weights(tmp_path / "m")
    assert all((a[k] == b[k]).all() for k in a)
    capsys.readouterr()
    assert main(["verify", "--run", str(run)]) == 0
    report = json.loads(capsys.readouterr().out.split("\nOK")[0])
    assert report["use_ema"] is False and report["image_max_abs_diff"] <= 1e-5 and report["text_max_abs_diff"] <= 1e-5
    # and the EMA merge is a different model: the choice matters, so the test could fail
    ema = tmp_path / "ema"
    assert main(tiny_train_args(tiny_open_clip_json, tiny_folders, ema, "radapter", "--optim.lr", "0.05")) == 0
    c = _weights(ema / "merged")
    assert any(not (a[k] == c[k]).all() for k in a)


def test_merge_states_extrapolation(tiny_open_clip_json, tiny_folders, tmp_path, capsys):
    run = tmp_path / "ra"
    assert main(tiny_train_args(tiny_open_clip_json, tiny_folders, run, "radapter", "--optim.lr", "0.05")) == 0
    capsys.readouterr()
    assert main(["merge", "--run", str(run), "--alpha", "1.5", "--out", str(tmp_path / "m")]) == 0
    assert "outside [0, 1]" in capsys.readouterr().out
    assert "extrapolat" in (tmp_path / "m" / "README.md").read_text()


def test_user_errors_are_one_line_and_bugs_keep_their_traceback(
    tiny_open_clip_json, tiny_folders, tmp_path, capsys, monkeypatch
):
    assert main(tiny_train_args(tiny_open_clip_json, tiny_folders, tmp_path / "a", "radapter", "--optim.lr", "x")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "optim.lr: expected a number, got 'x'" in err
    from radapter.methods.radapter import RAdapterMethod

    def broken(self, batch):
        raise ValueError("a bug in the loss")

    monkeypatch.setattr(RAdapterMethod, "loss", broken)
    with pytest.raises(ValueError, match="a bug in the loss"):
        main(tiny_train_args(tiny_open_clip_json, tiny_folders, tmp_path / "b", "radapter"))
