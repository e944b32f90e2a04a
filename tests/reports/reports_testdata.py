"""Hand-made result rows with known means and stds, shared by the report tests.

A plain module, not a conftest.py: other test folders import their conftest by module name, which a
second conftest.py here would shadow.
"""

from __future__ import annotations

OOD = ["V2", "Sketch"]


def make_row(method, alpha, seed, id_acc, ood_accs, **extra):
    """A result row with ID set "IN" and OOD sets V2, Sketch (accuracies in that order)."""
    row = {"method": method, "alpha": alpha, "step": 100, "seed": seed, "id_set": "IN", "ood_sets": list(OOD)}
    row["IN:top1"] = id_acc
    for name, acc in zip(OOD, ood_accs):
        row[f"{name}:top1"] = acc
    row.update(extra)
    return row


def sample_rows():
    """zeroshot (2 seeds), ft (2 seeds), wiseft and radapter sweeps over α ∈ {0, 0.5, 1} (1 seed)."""
    out = [
        make_row("zeroshot", None, 0, 60.0, [50.0, 40.0], trainable_params=0),
        make_row("zeroshot", None, 1, 62.0, [52.0, 44.0], trainable_params=0),
        make_row("ft", None, 0, 80.0, [45.0, 30.0], trainable_params=86_700_000, train_seconds=100.0),
        make_row("ft", None, 1, 82.0, [47.0, 34.0], trainable_params=86_700_000, train_seconds=140.0),
    ]
    for a, (i, o1, o2) in zip((0.0, 0.5, 1.0), [(61.0, 51.0, 42.0), (75.0, 55.0, 45.0), (81.0, 46.0, 32.0)]):
        out.append(make_row("wiseft", a, 0, i, [o1, o2], trainable_params=86_700_000))
    for a, (i, o1, o2) in zip((0.0, 0.5, 1.0), [(61.0, 51.0, 42.0), (78.0, 58.0, 48.0), (83.0, 55.0, 44.0)]):
        out.append(make_row("radapter", a, 0, i, [o1, o2], trainable_params=20_447_280, adapter_bytes=81_789_120))
    return out
