"""`radapter demo --quick` end to end at CI size: the three files with the promised schema."""

from __future__ import annotations

import json
import os

import pytest

from radapter.cli.demo import QUICK, WORLD_MODEL
from radapter.cli.main import main

pytestmark = pytest.mark.skipif(
    not os.path.isfile(os.path.join(WORLD_MODEL, "open_clip_config.json")), reason="the world CLIP asset is not built"
)


def test_demo_quick_writes_results_report_and_plot(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--size", "ci", "--out", str(out)]) == 0
    for name in ("results.json", "report.md", "id_vs_ood.png"):
        assert (out / name).stat().st_size > 0, name
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
    # α = 0 of the R-Adapter curve is the zero-shot model
    zs = doc["methods"]["zeroshot"]
    assert doc["curves"]["radapter"][0][1] == pytest.approx(zs["id"])
    assert "R-Adapter" in (out / "report.md").read_text()


def test_demo_rejects_overrides(capsys):
    assert main(["demo", "--optim.lr", "1"]) == 2


def test_demo_sizes_cover_every_mode():
    """--quick on the default size resolves to the 'quick' preset (a KeyError here once broke `demo --quick`)."""
    from radapter.cli.demo import SIZES

    assert {"full", "quick", "ci"} <= set(SIZES)
    assert SIZES["full"]["data.world_test"] >= 1000
