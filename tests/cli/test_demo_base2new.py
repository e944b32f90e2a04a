"""The demo's base-to-novel part: its targets, and the part end to end at CI size."""

from __future__ import annotations

import json
import os

import pytest

from radapter.cli.demo import PARTS, WORLD_MODEL
from radapter.cli.demo.base2new import QUICK, RUNS, SIZES, story_checks
from radapter.cli.main import main


def _doc(**methods: tuple[float, float]) -> dict:
    return {"methods": {k: {"id": b, "ood_avg": n} for k, (b, n) in methods.items()}}


def test_story_checks_measure_each_target():
    doc = _doc(zeroshot=(80.0, 82.0), ft=(92.0, 64.0), wiseft=(94.0, 76.0), radapter=(92.0, 80.5))
    checks = {c["target"]: c for c in story_checks(doc, model_params=1)}
    assert [c["pass"] for c in checks.values()] == [True, True, True, True]
    assert checks["R-Adapter (α = 0.5): novel ≥ zero-shot − 2"]["value"] == "-1.5"
    assert checks["R-Adapter (α = 0.5): base ≥ zero-shot + 5"]["value"] == "+12.0"
    # HM of the means: R-Adapter 2·92·80.5/172.5 = 85.87, WiSE-FT 2·94·76/170 = 84.05 (the best other row)
    assert checks["R-Adapter (α = 0.5): HM ≥ every other row's HM"]["value"] == "+1.8 vs wiseft"

    fails = story_checks(_doc(zeroshot=(80.0, 82.0), ft=(92.0, 83.0), radapter=(84.0, 79.0)), model_params=1)
    assert [c["pass"] for c in fails] == [False, False, False, False]  # ft: HM 87.3 > 81.4
    losing = story_checks(_doc(zeroshot=(80.0, 82.0), coop=(95.0, 82.0), radapter=(86.0, 81.0)), 1)
    assert losing[-1]["pass"] is False and losing[-1]["value"].endswith("vs coop")


def test_the_part_is_registered_with_every_size_and_the_asked_rows():
    assert PARTS["base2new"].task == "base2new"
    assert list(RUNS) == ["zeroshot", "ft", "wiseft", "coop", "lora", "radapter"]
    assert set(QUICK) <= set(RUNS) and {"full", "quick", "ci"} <= set(SIZES)
    assert RUNS["radapter"][0]["method.radapter.ema_momentum"] == 0.9 and RUNS["radapter"][0]["eval.alpha"] == 0.5


@pytest.mark.skipif(
    not os.path.isfile(os.path.join(WORLD_MODEL, "open_clip_config.json")), reason="the world CLIP asset is missing"
)
def test_demo_base2new_at_ci_size(tmp_path):
    top = tmp_path / "demo"
    assert main(["demo", "--size", "ci", "--seeds", "1", "--out", str(top), "--task", "base2new"]) == 0
    out = top / "base2new"
    doc = json.loads((out / "results.json").read_text())
    assert set(doc["methods"]) == set(RUNS)
    for name, m in doc["methods"].items():
        assert 0 <= m["id"] <= 100 and set(m["ood"]) == {"novel"} and m["ood_avg"] == m["ood"]["novel"], name
        assert m["id_shift"] is None  # HM is a derived column, not an ID-shift set
    assert doc["methods"]["wiseft"]["alpha"] == 0.5 and doc["methods"]["radapter"]["alpha"] == 0.5
    assert doc["methods"]["coop"]["trainable_params"] > 0 and doc["methods"]["zeroshot"]["trainable_params"] == 0
    assert len(doc["checks"]) == 4 and all(isinstance(c["pass"], bool) for c in doc["checks"])
    report = (out / "report.md").read_text()
    assert "| base (ID) | novel (OOD) | HM (base, novel) |" in report and "## Targets" in report
    run = out / "runs" / "seed0" / "radapter"
    assert (run / "base_classes.txt").read_text().split() == ["arrow", "circle", "cross", "heart", "hourglass"]
