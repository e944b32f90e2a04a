import json
import math

import pytest
from reports_testdata import make_row, sample_rows

from radapter.reports import (
    avg_ood,
    format_bytes,
    format_params,
    format_seconds,
    load_results,
    method_label,
    summarize,
    to_csv,
    to_markdown,
)


@pytest.fixture
def rows():
    return sample_rows()


def test_avg_ood_is_mean_of_listed_ood_sets_only(rows):
    row = dict(rows[0], **{"Extra:top1": 99.0})  # not in ood_sets, must not count
    assert avg_ood(row) == pytest.approx(45.0)


def test_avg_ood_falls_back_and_rejects_partial_rows():
    assert avg_ood({"avg_ood:top1": 12.5}) == 12.5
    assert avg_ood({"method": "x"}) is None
    with pytest.raises(ValueError, match="Sketch"):
        avg_ood({"ood_sets": ["V2", "Sketch"], "V2:top1": 1.0})


def test_summarize_means_and_sample_stds(rows):
    summary = summarize(rows)
    assert [(r["method"], r["alpha"]) for r in summary] == [
        ("zeroshot", None),
        ("ft", None),
        ("wiseft", 0.0),
        ("wiseft", 0.5),
        ("wiseft", 1.0),
        ("radapter", 0.0),
        ("radapter", 0.5),
        ("radapter", 1.0),
    ]
    zs, ft = summary[0], summary[1]
    assert zs["n_seeds"] == 2 and zs["seeds"] == [0, 1]
    assert zs["IN:top1"] == pytest.approx(61.0)
    assert zs["std"]["IN:top1"] == pytest.approx(math.sqrt(2.0))  # sample std of {60, 62}
    # avg OOD per seed is 45 and 48: mean 46.5, std of the average (not of the sets).
    assert zs["avg_ood:top1"] == pytest.approx(46.5)
    assert zs["std"]["avg_ood:top1"] == pytest.approx(math.sqrt(4.5))
    assert ft["train_seconds"] == pytest.approx(120.0)
    assert ft["trainable_params"] == 86_700_000 and isinstance(ft["trainable_params"], int)
    assert ft["id_set"] == "IN" and ft["ood_sets"] == ["V2", "Sketch"]
    assert "seed" not in ft
    single = summary[3]
    assert single["n_seeds"] == 1 and single["std"] == {}


def test_summarize_orders_alpha_within_method_and_rejects_mixed_sets():
    shuffled = [make_row("radapter", a, 0, 70.0, [50.0, 40.0]) for a in (1.0, 0.0, 0.5)]
    assert [r["alpha"] for r in summarize(shuffled)] == [0.0, 0.5, 1.0]
    bad = [make_row("ft", None, 0, 70.0, [50.0, 40.0]), make_row("ft", None, 1, 70.0, [50.0, 40.0])]
    bad[1]["ood_sets"] = ["V2"]
    with pytest.raises(ValueError, match="ood_sets"):
        summarize(bad)


def test_summarize_custom_group_by_keeps_seeds_apart(rows):
    per_seed = summarize(rows, group_by=("method", "alpha", "seed"))
    assert len(per_seed) == len(rows)
    assert all(r["n_seeds"] == 1 for r in per_seed)


@pytest.mark.parametrize(
    "n, text",
    [(0, "0"), (512, "512"), (1_500, "1.5 K"), (20_447_280, "20.4 M"), (86_700_000, "86.7 M"), (1.2e9, "1.2 B")],
)
def test_format_params(n, text):
    assert format_params(n) == text


@pytest.mark.parametrize(
    "n, text", [(100, "100 B"), (2048, "2.0 KB"), (81_789_120, "78.0 MB"), (3 * 2**30, "3.0 GB"), (None, "–")]
)
def test_format_bytes(n, text):
    assert format_bytes(n) == text


@pytest.mark.parametrize("s, text", [(4.25, "4.2 s"), (200, "3 min 20 s"), (5400, "1 h 30 min"), (59.96, "60.0 s")])
def test_format_seconds(s, text):
    assert format_seconds(s) == text


def test_method_label():
    assert method_label("wiseft") == "WiSE-FT"
    assert method_label("radapter-no-ema") == "R-Adapter (no ema)"
    assert method_label("mine") == "mine"


def test_markdown_header_rows_and_cells(rows):
    md = to_markdown(rows)
    lines = md.splitlines()
    assert lines[0] == (
        "| method | α | IN (ID) | V2 (OOD) | Sketch (OOD) | avg OOD | trainable params | adapter size | train time |"
    )
    assert lines[1] == "|---|---|---:|---:|---:|---:|---:|---:|---:|"
    assert len(lines) == 2 + 8
    zs = lines[2].split(" | ")
    assert zs[0] == "| Zero-shot" and zs[1] == "–"
    assert zs[2] == "61.0 ± 1.4" and zs[5] == "46.5 ± 2.1"
    ft = [c.strip(" |") for c in lines[3].split(" | ")]
    assert ft[6] == "86.7 M" and ft[8] == "2 min 00 s ± 28.3 s"  # params equal over seeds: no "± 0"
    ra = [c.strip(" |") for c in lines[-2].split(" | ")]
    assert ra[:3] == ["R-Adapter", "0.5", "78.0"] and ra[5] == "53.0" and ra[7] == "78.0 MB"


def test_markdown_column_selection(rows):
    md = to_markdown(rows, columns=["method", "IN", "avg_ood"])
    assert md.splitlines()[0] == "| method | IN (ID) | avg OOD |"
    with pytest.raises(ValueError, match="nope"):
        to_markdown(rows, columns=["method", "nope"])


def test_markdown_puts_non_ood_sets_between_id_and_ood():
    row = make_row("ft", None, 0, 80.0, [50.0, 40.0], **{"IN-shift:top1": 70.0})
    header = to_markdown([row]).splitlines()[0]
    assert header.startswith("| method | α | IN (ID) | IN-shift | V2 (OOD) | Sketch (OOD) | avg OOD |")


def test_csv_has_raw_numbers_and_std_columns(rows, tmp_path):
    path = tmp_path / "t.csv"
    text = to_csv(rows, path=path)
    assert path.read_text() == text
    lines = text.splitlines()
    header = lines[0].split(",")
    assert header[:4] == ["method", "alpha", "IN (ID)", "IN (ID) std"]
    assert header[-1] == "n_seeds" and "trainable_params" in header
    assert len(lines) == 1 + 8
    zs = dict(zip(header, lines[1].split(",")))
    assert zs["method"] == "zeroshot" and zs["alpha"] == ""
    assert float(zs["IN (ID)"]) == pytest.approx(61.0)
    assert float(zs["IN (ID) std"]) == pytest.approx(math.sqrt(2.0))
    assert zs["n_seeds"] == "2"
    ra = dict(zip(header, lines[-1].split(",")))
    assert ra["adapter_bytes"] == "81789120" and ra["IN (ID) std"] == ""


def test_load_results_round_trip_and_blank_lines(rows, tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows[:3]) + "\n\n")
    assert load_results(path) == rows[:3]


@pytest.mark.parametrize("bad, what", [("{not json", "not valid JSON"), ("[1, 2]", "expected a JSON object")])
def test_load_results_names_file_and_line(rows, tmp_path, bad, what):
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps(rows[0]) + "\n" + json.dumps(rows[1]) + "\n" + bad + "\n")
    with pytest.raises(ValueError) as err:
        load_results(path)
    assert f"{path}:3:" in str(err.value) and what in str(err.value)


def test_tables_follow_the_rows_metric():
    """A retrieval row (metric R@1) is tabulated and averaged by its own metric, not by top-1."""
    from radapter.reports.tables import avg_ood, eval_sets, id_score

    row = {
        "method": "radapter",
        "alpha": 0.8,
        "seed": 0,
        "metric": "R@1",
        "id_set": "coco",
        "ood_sets": ["flickr"],
        "coco:R@1": 50.0,
        "coco:image_to_text:R@1": 60.0,
        "flickr:R@1": 70.0,
    }
    assert eval_sets(row) == ["coco", "flickr"] and id_score(row) == 50.0 and avg_ood(row) == 70.0
    header = to_markdown([row]).splitlines()[0]
    assert header.startswith("| method | α | coco (ID) | flickr (OOD) | avg OOD |")
    with pytest.raises(ValueError, match="disagree on metric|different tasks"):
        to_markdown([row, {**row, "metric": "top1", "coco:top1": 1.0, "flickr:top1": 2.0}])
