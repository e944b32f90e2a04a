"""A run's report folder: ``results.json``, ``report.md`` and ``id_vs_ood.png`` from result rows.

``results.json`` is the compact schema of ``radapter demo`` (one entry per method at its reported α,
plus the α curves)::

    {"methods": {NAME: {"id": float, "id_shift": float | null, "ood": {SET: float}, "ood_avg": float,
                        "id_std": float, "ood_avg_std": float, "trainable_params": int, "seconds": float,
                        "alpha": float | null, "n_seeds": int}},
     "curves": {"wiseft" | "radapter" | ...: [[alpha, id, ood_avg], ...]}}

Accuracies are top-1 percentages averaged over seeds; stds are sample stds over seeds (0.0 for one
seed, see ``n_seeds``). NAME is the row's ``method`` key (``zeroshot``, ``ft``, ``radapter-no-ema`` …).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from radapter.reports.plots import plot_alpha_curve, plot_id_vs_ood
from radapter.reports.tables import as_summary, avg_ood, eval_sets, id_score, metric_label, metric_of, to_markdown


def _id_shift_set(row: dict, id_shift_set: str | None) -> str | None:
    if id_shift_set is not None:
        return id_shift_set
    ood = set(row.get("ood_sets") or [])
    others = [n for n in eval_sets(row) if n != row.get("id_set") and n not in ood]
    return others[0] if len(others) == 1 else None


def _pick(method: str, group: list[dict], point_alpha: Mapping[str, float] | float) -> dict:
    """The summary row that stands for ``method`` in ``results.json``: its only row, or the one at its α."""
    if len(group) == 1:
        return group[0]
    want = point_alpha.get(method, 0.5) if isinstance(point_alpha, Mapping) else point_alpha
    for row in group:
        if row.get("alpha") is not None and math.isclose(row["alpha"], want):
            return row
    alphas = [r.get("alpha") for r in group]
    raise ValueError(f"method {method!r} was evaluated at α ∈ {alphas}, none is the reported α = {want}")


def to_results_json(
    rows: Sequence[dict],
    point_alpha: Mapping[str, float] | float = 0.5,
    id_shift_set: str | None = None,
) -> dict:
    """The ``results.json`` document (module docstring) from result or summary rows.

    Args:
        rows: result rows (averaged over seeds here) or summary rows.
        point_alpha: the α that represents a method evaluated at several α (a sweep) in ``methods``;
            one value for all, or per method key (default 0.5 for any method not named).
        id_shift_set: the eval set reported as ``id_shift``; default: the one set that is neither the
            ID set nor OOD, if there is exactly one.

    Raises:
        ValueError: a swept method has no row at its reported α.
    """
    summary = as_summary(rows)
    by_method: dict[str, list[dict]] = {}
    for row in summary:
        by_method.setdefault(row["method"], []).append(row)

    methods = {}
    for method, group in by_method.items():
        row = _pick(method, group, point_alpha)
        std = row.get("std", {})
        shift = _id_shift_set(row, id_shift_set)
        id_name = row.get("id_set")
        metric = metric_of(row)
        methods[method] = {
            "id": id_score(row),
            "id_shift": row.get(f"{shift}:{metric}") if shift else None,
            "ood": {n: row.get(f"{n}:{metric}") for n in row.get("ood_sets") or []},
            "ood_avg": avg_ood(row),
            "id_std": std.get(f"{id_name}:{metric}", 0.0),
            "ood_avg_std": std.get(f"avg_ood:{metric}", 0.0),
            "trainable_params": int(row.get("trainable_params") or 0),
            "seconds": float(row.get("train_seconds") or 0.0),
            "alpha": row.get("alpha"),
            "n_seeds": row.get("n_seeds", 1),
        }

    curves = {}
    for method, group in by_method.items():
        pts = [r for r in group if r.get("alpha") is not None and id_score(r) is not None and avg_ood(r) is not None]
        if len(pts) >= 2:
            pts.sort(key=lambda r: r["alpha"])
            curves[method] = [[r["alpha"], id_score(r), avg_ood(r)] for r in pts]
    return {"methods": methods, "curves": curves}


def curve_gaps(curve: Sequence[Sequence[float]], reference: Sequence[Sequence[float]]) -> list[list[float | None]]:
    """How far each point of an α curve lies above (+) or below (−) a reference curve at matched ID.

    Robust fine-tuning methods are compared by their ID-vs-OOD curves: a point is dominated when the
    reference reaches the same ID with more OOD. The reference's OOD at a point's ID is read off the
    reference curve by linear interpolation between its points sorted by ID.

    Args:
        curve, reference: ``[[alpha, id, ood], ...]`` as in ``results.json``'s ``curves``.

    Returns:
        ``[[alpha, id, ood, reference_ood, gap], ...]``; ``reference_ood`` and ``gap`` are None where the
        point's ID lies outside the reference's ID range (nothing to compare with).
    """
    ref = sorted((float(i), float(o)) for _a, i, o in reference)
    out: list[list[float | None]] = []
    for alpha, id_acc, ood in curve:
        at = None
        for (i0, o0), (i1, o1) in zip(ref, ref[1:]):
            if i0 <= id_acc <= i1:
                at = o0 if i1 == i0 else o0 + (o1 - o0) * (id_acc - i0) / (i1 - i0)
                break
        if at is None and len(ref) == 1 and ref[0][0] == id_acc:
            at = ref[0][1]
        out.append([alpha, id_acc, ood, at, None if at is None else ood - at])
    return out


def report_markdown(rows: Sequence[dict], title: str = "radapter report", plot_name: str | None = None) -> str:
    """``report.md``: the table (mean ± std over seeds), what the columns mean, and the plot if given."""
    summary = as_summary(rows)
    seeds = sorted({r.get("n_seeds", 1) for r in summary})
    seed_text = f"{seeds[0]}" if len(seeds) == 1 else f"{seeds[0]}–{seeds[-1]}"
    label = metric_label(metric_of(summary[0]) if summary else "top1")
    parts = [
        f"# {title}",
        "",
        f"{label[0].upper()}{label[1:]} (%), mean ± std over {seed_text} seed(s) (sample std; none shown for one seed). "
        "avg OOD = mean over the OOD sets. Trainable params: parameters updated in training; adapter size: "
        "the saved adapter on disk; train time: wall-clock training time.",
        "",
        to_markdown(summary),
        "",
    ]
    if plot_name:
        parts += [f"![ID vs. OOD {label}, logit axes]({plot_name})", ""]
    return "\n".join(parts)


def write_report(
    rows: Sequence[dict],
    out_dir: str | Path,
    title: str = "radapter report",
    point_alpha: Mapping[str, float] | float = 0.5,
    id_shift_set: str | None = None,
) -> dict[str, Path]:
    """Write ``results.json``, ``report.md``, ``id_vs_ood.png`` (and ``alpha_curve.png`` when some
    method was swept over α) into ``out_dir``.

    Returns:
        Name → path of every file written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = as_summary(rows)
    written = {}
    doc = to_results_json(summary, point_alpha=point_alpha, id_shift_set=id_shift_set)
    written["results.json"] = out_dir / "results.json"
    written["results.json"].write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    written["id_vs_ood.png"] = out_dir / "id_vs_ood.png"
    plot_id_vs_ood(summary, written["id_vs_ood.png"], title=title)
    if doc["curves"]:
        written["alpha_curve.png"] = out_dir / "alpha_curve.png"
        plot_alpha_curve(summary, written["alpha_curve.png"])
    written["report.md"] = out_dir / "report.md"
    written["report.md"].write_text(report_markdown(summary, title, "id_vs_ood.png"), encoding="utf-8")
    return written
