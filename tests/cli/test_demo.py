"""`radapter demo --quick` end to end at CI size: the three files with the promised schema."""

from __future__ import annotations

import json
import os

import pytest

from conftest import tiny_train_args
from radapter.cli.demo import WORLD_MODEL
from radapter.cli.demo.classification import QUICK
from radapter.cli.main import main

pytestmark = pytest.mark.skipif(
    not os.path.isfile(os.path.join(WORLD_MODEL, "open_clip_config.json")), reason="the world CLIP asset is not built"
)


@pytest.mark.slow
def test_demo_quick_writes_results_report_and_plot(tmp_path):
    top = tmp_path / "demo"
    assert main(["demo", "--quick", "--size", "ci", "--out", str(top), "--task", "classification"]) == 0
    out = top / "classification"
    for name in ("results.json", "report.md", "id_vs_ood.png"):
        assert (out / name).stat().st_size > 0, name
    combined = json.loads((top / "results.json").read_text())
    assert set(combined["tasks"]) == {"classification"} and combined["seconds_total"] > 0
    assert "classification/id_vs_ood.png" in (top / "report.md").read_text()
    doc = json.loads((out / "results.json").read_text())
    assert set(doc["methods"]) == set(QUICK)
    for name, m in doc["methods"].items():
        for key in ("id", "id_shift", "ood_avg", "id_std", "ood_avg_std", "seconds"):
            assert isinstance(m[key], float), (name, key)
        assert isinstance(m["trainable_params"], int)
        assert set(m["ood"]) == {"ood_cartoon", "ood_sketch", "ood_inverted", "ood_noisy", "ood_lowcontrast"}
        assert m["ood_avg"] == pytest.approx(sum(m["ood"].values()) / len(m["ood"]))
    assert doc["methods"]["zeroshot"]["trainable_params"] == 0
    assert doc["methods"]["radapter"]["trainable_params"] > 0
    for curve in ("wiseft", "radapter"):
        alphas = [p[0] for p in doc["curves"][curve]]
        assert alphas[0] == 0.0 and alphas[-1] == 1.0 and len(doc["curves"][curve][0]) == 3
    # α = 0 of the curves is copied from the zero-shot run (the identity is tested below and in test_trainer)
    zs = doc["methods"]["zeroshot"]
    assert doc["curves"]["radapter"][0][1] == pytest.approx(zs["id"])
    report = (out / "report.md").read_text()
    assert "R-Adapter" in report and "## Targets" in report
    assert {c["target"].split(":")[0] for c in doc["checks"]} >= {"zero-shot", "ft", "R-Adapter (α = 0.5)"}
    assert all(isinstance(c["pass"], bool) for c in doc["checks"])


def test_wiseft_endpoints_are_the_zero_shot_and_fine_tuned_models_exactly(tiny_open_clip_json, tiny_folders, tmp_path):
    """The demo copies WiSE-FT's α = 0 row from zero-shot and its α = 1 row from ft instead of evaluating them."""
    assert main(tiny_train_args(tiny_open_clip_json, tiny_folders, tmp_path / "zs", "zeroshot")) == 0
    assert main(tiny_train_args(tiny_open_clip_json, tiny_folders, tmp_path / "ft", "ft", "--optim.lr", "0.01")) == 0
    zs = json.loads((tmp_path / "zs" / "results.jsonl").read_text().splitlines()[0])
    ft = json.loads((tmp_path / "ft" / "results.jsonl").read_text().splitlines()[0])
    args = ["--method.wiseft.ft_model", str(tmp_path / "ft"), "--eval.alphas", "[0.0, 1.0]"]
    assert main(tiny_train_args(tiny_open_clip_json, tiny_folders, tmp_path / "w", "wiseft", *args)) == 0
    wise = {r["alpha"]: r for r in map(json.loads, (tmp_path / "w" / "results.jsonl").read_text().splitlines())}
    keys = [k for k in zs if k.endswith(":top1") or k.endswith(":top5")]
    assert all(wise[0.0][k] == zs[k] for k in keys)
    assert all(wise[1.0][k] == ft[k] for k in keys)
    assert any(ft[k] != zs[k] for k in keys), "fine-tuning changed nothing: the test would prove nothing"


def test_story_checks_compare_curves_at_matched_id():
    from radapter.cli.demo.classification import story_checks
    from radapter.reports import curve_gaps

    wise = [[0.0, 60.0, 60.0], [0.5, 80.0, 64.0], [1.0, 90.0, 56.0]]
    # at ID 70 WiSE-FT reaches 62; at ID 85, 60; ID 95 is beyond its range
    gaps = curve_gaps([[0.5, 70.0, 61.0], [0.75, 85.0, 61.0], [1.0, 95.0, 50.0]], wise)
    assert [g[3] for g in gaps] == [pytest.approx(62.0), pytest.approx(60.0), None]
    assert [g[4] for g in gaps][:2] == [pytest.approx(-1.0), pytest.approx(1.0)]
    doc = {"methods": {}, "curves": {"wiseft": wise, "radapter": [[0.5, 70.0, 61.0], [1.0, 85.0, 61.0]]}}
    (check,) = story_checks(doc, model_params=100)
    assert not check["pass"] and "α = 0.5" in check["value"] and "-1.0" in check["value"]


def test_demo_rejects_overrides(capsys):
    assert main(["demo", "--optim.lr", "1"]) == 2


def test_demo_sizes_cover_every_mode():
    """--quick on the default size resolves to the 'quick' preset (a KeyError here once broke `demo --quick`)."""
    from radapter.cli.demo.classification import SIZES

    assert {"full", "quick", "ci"} <= set(SIZES)
    assert SIZES["full"]["data.world.test"] >= 1000


@pytest.mark.slow
def test_demo_retrieval_part_at_ci_size(tmp_path):
    top = tmp_path / "demo"
    assert main(["demo", "--quick", "--size", "ci", "--out", str(top), "--task", "retrieval"]) == 0
    doc = json.loads((top / "retrieval" / "results.json").read_text())
    from radapter.cli.demo.retrieval import QUICK as RQUICK

    assert set(doc["methods"]) == set(RQUICK)
    zs = doc["methods"]["zeroshot"]
    assert set(zs["ood"]) == {"ood_cartoon", "ood_sketch", "ood_inverted", "ood_noisy", "ood_lowcontrast"}
    assert 0 <= zs["id"] <= 100 and doc["curves"]["radapter"][0][1] == pytest.approx(zs["id"])
    assert [c["target"] for c in doc["checks"]][:2] == [
        "contrastive FT: ID R@1 ≥ zero-shot + 5",
        "contrastive FT: OOD R@1 below zero-shot",
    ]


@pytest.mark.slow
def test_demo_results_do_not_depend_on_the_number_of_workers(tmp_path):
    """Independent runs trained in 2 worker processes give the rows a single process gives, bit for bit."""
    docs = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        argv = ["demo", "--quick", "--size", "ci", "--out", str(out), "--task", "classification"]
        assert main([*argv, "--workers", str(workers), "--threads", "1"]) == 0
        rows = [json.loads(x) for x in (out / "classification" / "rows.jsonl").read_text().splitlines()]
        docs[workers] = [{k: v for k, v in r.items() if ":" in k or k in ("method", "alpha", "seed")} for r in rows]
    assert docs[1] == docs[2]
