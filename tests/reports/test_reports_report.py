import json

import pytest
from reports_testdata import sample_rows

from radapter.reports import load_results, to_results_json, write_report


@pytest.fixture
def rows():
    return sample_rows()


def test_results_json_schema(rows):
    for r in rows:
        r["IN-shift:top1"] = r["IN:top1"] - 5
    doc = to_results_json(rows)
    assert set(doc) == {"methods", "curves"}
    assert set(doc["methods"]) == {"zeroshot", "ft", "wiseft", "radapter"}
    zs = doc["methods"]["zeroshot"]
    assert zs["id"] == pytest.approx(61.0) and zs["id_shift"] == pytest.approx(56.0)
    assert zs["ood"] == {"V2": pytest.approx(51.0), "Sketch": pytest.approx(42.0)}
    assert zs["ood_avg"] == pytest.approx(46.5)
    assert zs["id_std"] == pytest.approx(2**0.5) and zs["ood_avg_std"] == pytest.approx(4.5**0.5)
    assert zs["n_seeds"] == 2 and zs["trainable_params"] == 0 and zs["seconds"] == 0.0
    ra = doc["methods"]["radapter"]
    assert ra["alpha"] == 0.5 and ra["id"] == 78.0 and ra["ood_avg"] == 53.0 and ra["id_std"] == 0.0
    assert doc["methods"]["ft"]["seconds"] == pytest.approx(120.0)
    assert doc["curves"]["radapter"] == [[0.0, 61.0, 46.5], [0.5, 78.0, 53.0], [1.0, 83.0, 49.5]]
    assert set(doc["curves"]) == {"wiseft", "radapter"}
    json.dumps(doc)  # serialisable as is


def test_results_json_point_alpha(rows):
    doc = to_results_json(rows, point_alpha={"radapter": 1.0})
    assert doc["methods"]["radapter"]["id"] == 83.0 and doc["methods"]["wiseft"]["alpha"] == 0.5
    with pytest.raises(ValueError, match="wiseft"):
        to_results_json(rows, point_alpha=0.3)


def test_write_report_from_jsonl(rows, tmp_path):
    src = tmp_path / "results.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    written = write_report(load_results(src), tmp_path / "report", title="tiny")
    assert set(written) == {"results.json", "report.md", "id_vs_ood.png", "alpha_curve.png"}
    assert all(p.stat().st_size > 0 for p in written.values())
    md = written["report.md"].read_text()
    assert md.startswith("# tiny\n") and "![ID vs. OOD top-1 accuracy, logit axes](id_vs_ood.png)" in md
    assert "| method | α | IN (ID) |" in md and "1–2 seed(s)" in md
    assert json.loads(written["results.json"].read_text())["methods"]["ft"]["id"] == pytest.approx(81.0)
