"""The segmentation part of `radapter demo`: its targets' logic, and the part end to end at CI size."""

from __future__ import annotations

import json
import os

import pytest

from radapter.cli.demo import PARTS, WORLD_MODEL
from radapter.cli.demo.segmentation import QUICK, SIZES, segmentation_checks
from radapter.cli.main import main


def _method(id_, unseen, ood):
    return {"id": id_, "id_shift": unseen, "ood_avg": ood}


def test_checks_compare_seen_unseen_and_held_out_domains_with_frozen():
    doc = {
        "methods": {
            "frozen": _method(30.0, 25.0, 27.0),
            "radapter": _method(33.0, 24.5, 25.5),  # seen +3, unseen -0.5 (within 1), held-out -1.5 (not)
            "full": _method(40.0, 25.0, 30.0),  # unseen unchanged: not a loss
        }
    }
    checks = {c["target"]: c for c in segmentation_checks(doc, model_params=1)}
    assert [c["pass"] for c in checks.values()] == [True, True, False, False]
    assert checks["R-Adapter (α = 0.4): held-out-domain mIoU ≥ frozen − 1"]["value"] == "-1.5"
    assert set(PARTS["segmentation"].runs) == {"frozen", "qv", "full", "radapter"}
    assert {"full", "quick", "ci"} <= set(SIZES)


@pytest.mark.skipif(not os.path.isfile(os.path.join(WORLD_MODEL, "open_clip_config.json")), reason="no world CLIP")
def test_demo_segmentation_part_at_ci_size(tmp_path):
    top = tmp_path / "demo"
    argv = ["demo", "--quick", "--size", "ci", "--out", str(top), "--task", "segmentation", "--workers", "1"]
    assert main(argv) == 0  # about 5 s in one process
    doc = json.loads((top / "segmentation" / "results.json").read_text())
    assert set(doc["methods"]) == set(QUICK)
    for m in doc["methods"].values():
        assert set(m["ood"]) == {"ood_cartoon", "ood_sketch", "ood_inverted", "ood_noisy", "ood_lowcontrast"}
        assert 0 <= m["id"] <= 100 and 0 <= m["id_shift"] <= 100
    assert [p[0] for p in doc["curves"]["radapter"]] == [0.0, 0.4, 0.7, 1.0]
    assert doc["methods"]["radapter"]["alpha"] == 0.4
    assert len(doc["checks"]) == 4 and all(isinstance(c["pass"], bool) for c in doc["checks"])
    report = (top / "segmentation" / "report.md").read_text()
    assert "id_seen (ID)" in report and "id_unseen" in report and "## Targets" in report
