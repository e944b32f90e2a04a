"""Hand-made result rows with known means and stds, shared by the report tests."""

from __future__ import annotations

import pytest

OOD = ["V2", "Sketch"]


def _make_row(method, alpha, seed, id_acc, ood_accs, **extra):
    row = {"method": method, "alpha": alpha, "step": 100, "seed": seed, "id_set": "IN", "ood_sets": list(OOD)}
    row["IN:top1"] = id_acc
    for name, acc in zip(OOD, ood_accs):
        row[f"{name}:top1"] = acc
    row.update(extra)
    return row


@pytest.fixture
def make_row():
    """``make_row(method, alpha, seed, id_acc, [v2_acc, sketch_acc], **extra)`` → a result row (ID set "IN")."""
    return _make_row


@pytest.fixture
def rows():
    """zeroshot (2 seeds), ft (2 seeds), wiseft and radapter sweeps over α ∈ {0, 0.5, 1} (1 seed)."""
    out = [
        _make_row("zeroshot", None, 0, 60.0, [50.0, 40.0], trainable_params=0),
        _make_row("zeroshot", None, 1, 62.0, [52.0, 44.0], trainable_params=0),
        _make_row("ft", None, 0, 80.0, [45.0, 30.0], trainable_params=86_700_000, train_seconds=100.0),
        _make_row("ft", None, 1, 82.0, [47.0, 34.0], trainable_params=86_700_000, train_seconds=140.0),
    ]
    for a, (i, o1, o2) in zip((0.0, 0.5, 1.0), [(61.0, 51.0, 42.0), (75.0, 55.0, 45.0), (81.0, 46.0, 32.0)]):
        out.append(_make_row("wiseft", a, 0, i, [o1, o2], trainable_params=86_700_000))
    for a, (i, o1, o2) in zip((0.0, 0.5, 1.0), [(61.0, 51.0, 42.0), (78.0, 58.0, 48.0), (83.0, 55.0, 44.0)]):
        out.append(_make_row("radapter", a, 0, i, [o1, o2], trainable_params=20_447_280, adapter_bytes=81_789_120))
    return out
