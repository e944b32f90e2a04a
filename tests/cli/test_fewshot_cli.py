"""``radapter fewshot base2new`` / ``xd`` on fake CoOp trees: one run per dataset × method × seed, tables in the
literature's layout whose numbers are those of the runs, finished runs reused, bad input refused."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
from fewshot_trees import write_coop_root, write_model_json  # noqa: E402

from radapter.cli.fewshot import _names, pick_row  # noqa: E402
from radapter.cli.main import main  # noqa: E402
from radapter.data.coop import coop_dataset_names  # noqa: E402


@pytest.fixture
def setup(tmp_path):
    root = write_coop_root(tmp_path / "data")
    return root, write_model_json(tmp_path / "tiny-coop.json")


def _common(root, model_json, out) -> list[str]:
    return ["--shots", "4", "--root", str(root), "--config", "tiny_test", "--model", model_json, "--out", str(out)]


def _deploy_row(run_dir: Path) -> dict:
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    return next(r for r in rows if r.get("default")) if any(r.get("default") for r in rows) else rows[0]


def _hm(b, n):
    return 2 * b * n / (b + n)


def test_fewshot_base2new_tables_hold_the_runs_numbers(setup, tmp_path, capsys):
    root, model_json = setup
    out = tmp_path / "b2n"
    argv = ["fewshot", "base2new", "--dataset", "dtd,eurosat", "--seeds", "1,2", "--method", "zeroshot,radapter"]
    argv += [*_common(root, model_json, out), "--optim.lr", "0.05"]
    assert main(argv) == 0
    doc = json.loads((out / "base2new.json").read_text())
    assert doc["shots"] == 4 and doc["seeds"] == [1, 2] and len(doc["rows"]) == 2 * 2 * 2
    for r in doc["rows"]:
        run = out / r["dataset"] / r["method"] / f"seed{r['seed']}"
        row = _deploy_row(run)
        assert (r["base"], r["novel"], r["HM"]) == (row["base:top1"], row["novel:top1"], row["HM:top1"])
        assert r["alpha"] == (0.5 if r["method"] == "radapter" else None)
        assert (run / f"fewshot_{r['dataset']}_4shot_seed{r['seed']}.json").is_file()
        assert (run / "novel_classes.txt").is_file()
    for s in doc["summary"]:
        mine = [r for r in doc["rows"] if (r["dataset"], r["method"]) == (s["dataset"], s["method"])]
        assert s["base"] == pytest.approx(statistics.fmean(r["base"] for r in mine))
        assert s["novel_std"] == pytest.approx(statistics.stdev(r["novel"] for r in mine))
        assert s["HM_of_means"] == pytest.approx(_hm(s["base"], s["novel"]))
        assert s["HM"] == pytest.approx(statistics.fmean(r["HM"] for r in mine))
    for a in doc["average"]:
        mine = [s for s in doc["summary"] if s["method"] == a["method"]]
        assert a["datasets"] == ["dtd", "eurosat"]
        assert a["base"] == pytest.approx((mine[0]["base"] + mine[1]["base"]) / 2)
        assert a["HM"] == pytest.approx(_hm(a["base"], a["novel"]))
    md = (out / "base2new.md").read_text()
    assert "| Average over 2 datasets | R-Adapter |" in md and "| EuroSAT | Zero-shot |" in md
    assert md.index("Average over 2 datasets") < md.index("| DTD |")
    csv_lines = (out / "base2new.csv").read_text().splitlines()
    assert csv_lines[0].startswith("dataset,method,seed,base,base std,novel") and len(csv_lines) == 1 + 8 + 4 + 2
    assert "Average over 2 datasets" in capsys.readouterr().out

    # a second call reads the finished runs back instead of training them again
    stamp = (out / "dtd" / "radapter" / "seed1" / "metrics.jsonl").stat().st_mtime_ns
    assert main(argv) == 0
    assert "reusing" in capsys.readouterr().out
    assert (out / "dtd" / "radapter" / "seed1" / "metrics.jsonl").stat().st_mtime_ns == stamp
    assert json.loads((out / "base2new.json").read_text())["rows"] == doc["rows"]
    # but not when the training settings changed
    assert main([*argv[:-1], "0.01"]) == 2
    err = capsys.readouterr().err
    assert "dtd/zeroshot/seed1: holds a finished run trained with other settings (optim.lr: 0.05 → 0.01)" in err


def test_fewshot_xd_averages_the_targets_only(setup, tmp_path):
    root, model_json = setup
    out = tmp_path / "xd"
    argv = ["fewshot", "xd", "--source", "dtd", "--targets", "eurosat,oxford_pets", "--seeds", "1", "--method", "coop"]
    assert main([*argv, *_common(root, model_json, out), "--method.coop.n_ctx", "4"]) == 0
    doc = json.loads((out / "xd.json").read_text())
    (r,) = doc["rows"]
    row = _deploy_row(out / "dtd" / "coop" / "seed1")
    assert (r["dtd"], r["eurosat"], r["oxford_pets"]) == (row["dtd:top1"], row["eurosat:top1"], row["oxford_pets:top1"])
    assert r["average"] == pytest.approx((r["eurosat"] + r["oxford_pets"]) / 2) == pytest.approx(row["avg_ood:top1"])
    md = (out / "xd.md").read_text()
    assert "| method | DTD (source) | EuroSAT | OxfordPets | Average |" in md and "| CoOp |" in md


def test_all_names_the_datasets_and_excludes_the_source():
    assert _names("all", "--dataset") == coop_dataset_names()
    assert _names("all", "--targets", exclude="imagenet") == coop_dataset_names()[1:]
    assert _names("DTD, EuroSAT", "--dataset") == ["dtd", "eurosat"]


def test_pick_row_takes_the_deploy_alpha():
    rows = [{"alpha": 0.0}, {"alpha": 0.5, "default": True, "config": {}}, {"alpha": 1.0}]
    assert pick_row(rows) == {"alpha": 0.5, "default": True}
    assert pick_row([{"alpha": None, "x": 1}]) == {"alpha": None, "x": 1}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["base2new", "--dataset", "dtd", "--seeds", "1,x"], "--seeds: expected comma-separated integers"),
        (["base2new", "--dataset", "dtd", "--seeds", "1,1"], "--seeds: expected distinct"),
        (["base2new", "--dataset", "dtd,mnist"], "--dataset: unknown CoOp dataset 'mnist'"),
        (["xd", "--source", "imagenet", "--targets", "imagenet"], "is the source"),
    ],
)
def test_bad_input_is_one_line(argv, message, setup, tmp_path, capsys):
    root, model_json = setup
    assert main(["fewshot", *argv, *_common(root, model_json, tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("radapter fewshot: error:") and message in err
