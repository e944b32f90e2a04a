"""Result tables: read ``results.jsonl``, average over seeds, write Markdown and CSV.

A *result row* is one JSON object per evaluated model variant, WiSE-FT-compatible::

    {"method": "radapter", "alpha": 0.5, "step": 25000, "seed": 0, "trainable_params": 20447280,
     "adapter_bytes": 81789120, "train_seconds": 5123.4,
     "id_set": "ImageNet", "ood_sets": ["ImageNetV2", "ImageNetR", ...],
     "ImageNet:top1": 82.0, "ImageNet:top5": 96.1, "ImageNetV2:top1": 73.6, ...}

Accuracies are percentages. "avg OOD" is the mean top-1 over the sets listed in ``ood_sets``
(WiSE-FT / FLYP convention, ``r-adapter.md`` §6). Eval sets that are neither the ID set nor OOD
(e.g. the demo's "ID-shift" set) get their own column but do not enter the average.

A *summary row* (from :func:`summarize`) has the same shape, so every function here and in
:mod:`radapter.reports.plots` takes either: numeric fields hold the mean over seeds, ``row["std"]``
maps the same keys to the sample standard deviation (only when there are two or more seeds),
``n_seeds`` and ``seeds`` say what was averaged.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from radapter.utils.text import MISSING, format_params

# Display names; registry keys stay the stable identifiers in files.
METHOD_LABELS = {
    "zeroshot": "Zero-shot",
    "ft": "FT",
    "lpft": "LP-FT",
    "flyp": "FLYP",
    "wiseft": "WiSE-FT",
    "lora": "LoRA",
    "radapter": "R-Adapter",
    "coop": "CoOp",
    "frozen": "Frozen CLIP + head",
    "qv": "Q/V (CAT-Seg)",
    "full": "Full FT",
}

# Columns that are bookkeeping, never averaged.
_NOT_AVERAGED = {"seed"}


def method_label(method: str) -> str:
    """Human name of a method key: ``"wiseft"`` → ``"WiSE-FT"``, ``"radapter-no-ema"`` → ``"R-Adapter (no ema)"``."""
    if method in METHOD_LABELS:
        return METHOD_LABELS[method]
    base, sep, variant = method.partition("-")
    if sep and base in METHOD_LABELS:
        return f"{METHOD_LABELS[base]} ({variant.replace('-', ' ')})"
    return method


# --------------------------------------------------------------------------------------------- reading


def load_results(path: str | Path) -> list[dict]:
    """Read a ``results.jsonl`` file: one JSON object per line, blank lines ignored.

    Raises:
        ValueError: a line is not valid JSON or not an object; the message names the file and line.
    """
    path = Path(path)
    rows = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------- row accessors


#: What a row's primary metric is called in tables and plot axes (rows carry ``"metric"``; default top1).
METRIC_LABELS = {
    "top1": "top-1 accuracy",
    "R@1": "R@1 (mean of image→text and text→image)",
    "mIoU": "mIoU",
}


def metric_of(row: dict) -> str:
    """The row's primary metric: ``"top1"`` (classification), ``"R@1"`` (retrieval), ``"mIoU"`` (segmentation)."""
    return row.get("metric") or "top1"


def metric_label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric)


#: Fields ``<name>:<metric>`` that are derived from several sets, not sets: the OOD average and the harmonic
#: mean of base and novel accuracy (base-to-novel).
DERIVED = ("avg_ood", "HM")


def eval_sets(row: dict) -> list[str]:
    """Names of the eval sets a row has its primary metric for, in file order (derived fields excluded)."""
    metric = metric_of(row)
    return [
        k.split(":", 1)[0]
        for k in row
        if ":" in k and k.split(":", 1)[1] == metric and k.split(":", 1)[0] not in DERIVED
    ]


def id_score(row: dict) -> float | None:
    """The primary metric on the row's ID set, or None when the row names no ID set or lacks it."""
    name = row.get("id_set")
    return row.get(f"{name}:{metric_of(row)}") if name else None


id_top1 = id_score  # the classification name, kept for callers


def avg_ood(row: dict) -> float | None:
    """Mean primary metric over the row's OOD sets (``ood_sets``).

    Falls back to a stored ``"avg_ood:<metric>"`` when the row lists no OOD sets; None when it has neither.

    Raises:
        ValueError: an OOD set is listed but its metric is missing (a silent partial average would
            not be comparable with other rows).
    """
    metric = metric_of(row)
    names = row.get("ood_sets") or []
    if not names:
        return row.get(f"avg_ood:{metric}")
    missing = [n for n in names if f"{n}:{metric}" not in row]
    if missing:
        raise ValueError(f"row {_describe(row)} lists OOD sets without {metric}: {missing}")
    return statistics.fmean(row[f"{n}:{metric}"] for n in names)


def _describe(row: dict) -> str:
    return f"(method={row.get('method')!r}, alpha={row.get('alpha')!r}, seed={row.get('seed')!r})"


def is_summary(rows: Sequence[dict]) -> bool:
    """True when ``rows`` came from :func:`summarize` (so they must not be averaged again)."""
    return bool(rows) and all("n_seeds" in r for r in rows)


def as_summary(rows: Sequence[dict]) -> list[dict]:
    """``rows`` if already summarised, else ``summarize(rows)``."""
    return list(rows) if is_summary(rows) else summarize(rows)


# ------------------------------------------------------------------------------------------ averaging


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def summarize(rows: Iterable[dict], group_by: Sequence[str] = ("method", "alpha")) -> list[dict]:
    """Average result rows over seeds: one summary row per distinct ``group_by`` value.

    Every numeric field present in a group is averaged (over the rows that have it); ``avg_ood:top1``
    is computed per row first, so its std is the seed std of the average. ``std`` holds the sample
    standard deviation (n − 1 denominator) for groups of two or more rows. Non-numeric fields are kept
    when all rows of the group agree and dropped otherwise. Groups are ordered by the first appearance
    of their first ``group_by`` value (the method), then by the other keys (α ascending, None first).

    Raises:
        ValueError: rows of one group disagree on ``id_set`` or ``ood_sets`` (their averages would
            mean different things).
    """
    groups: dict[tuple, list[dict]] = {}
    first_seen: dict[Any, int] = {}
    for row in rows:
        key = tuple(_freeze(row.get(k)) for k in group_by)
        groups.setdefault(key, []).append(row)
        first_seen.setdefault(key[:1], len(first_seen))
    order = sorted(groups, key=lambda k: (first_seen[k[:1]], [_sort_key(v) for v in k[1:]]))

    summary = []
    for members in (unique_measurements(groups[k]) for k in order):
        for field in ("id_set", "ood_sets", "metric"):
            values = {_freeze(m.get(field)) for m in members}
            if len(values) > 1:
                raise ValueError(f"rows {_describe(members[0])} grouped by {tuple(group_by)} disagree on {field}")
        members = [dict(m, **{f"avg_ood:{metric_of(m)}": avg_ood(m)}) if avg_ood(m) is not None else m for m in members]
        out: dict[str, Any] = {k: members[0].get(k) for k in group_by}
        means: dict[str, float] = {}
        stds: dict[str, float] = {}
        keys = dict.fromkeys(k for m in members for k in m)  # ordered union
        for key in keys:
            if key in group_by or key in _NOT_AVERAGED:
                continue
            values = [m[key] for m in members if key in m]
            if all(_is_number(v) for v in values):
                means[key] = statistics.fmean(values)
                if all(isinstance(v, int) for v in values) and means[key].is_integer():
                    means[key] = int(means[key])
                if len(values) >= 2:
                    stds[key] = statistics.stdev(values)
            elif all(_freeze(v) == _freeze(values[0]) for v in values) and len(values) == len(members):
                out[key] = values[0]
        out.update(means)
        out["n_seeds"] = len(members)
        out["seeds"] = [m.get("seed") for m in members]
        out["std"] = stds
        summary.append(out)
    return summary


def unique_measurements(rows: Sequence[dict]) -> list[dict]:
    """Drops rows that repeat another one's measurement: the same seed and step with every metric
    (``<set>:<metric>``) equal (a
    run's results.jsonl and its sweep.jsonl both hold the α = 0.5 row; counting it twice would print
    "± 0.0" as if two seeds agreed)."""
    seen, out = set(), []
    for row in rows:
        numbers = tuple(sorted((k, v) for k, v in row.items() if ":" in k and _is_number(v)))
        key = (_freeze(row.get("seed")), _freeze(row.get("step")), numbers)
        if key not in seen:
            seen.add(key)
            out.append(row)
    return out


def _sort_key(v: Any) -> tuple:
    """Total order over mixed JSON scalars: None, then numbers, then anything else as text."""
    if v is None:
        return (0, 0.0, "")
    if _is_number(v):
        return (1, float(v), "")
    return (2, 0.0, str(v))


def _freeze(v: Any) -> Any:
    """Hashable, order-preserving stand-in for JSON values (lists, dicts)."""
    if isinstance(v, list):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _freeze(x)) for k, x in v.items()))
    return v


# ----------------------------------------------------------------------------------------- formatting


def format_bytes(n: float | None) -> str:
    """File size in binary units, as ``ls -lh`` prints them: ``81789120`` → ``"78.0 MB"`` (1 MB = 2**20 B)."""
    if n is None:
        return MISSING
    for unit, size in (("TB", 2**40), ("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


def format_seconds(s: float | None) -> str:
    """Duration: ``4.25`` → ``"4.2 s"``, ``200`` → ``"3 min 20 s"``, ``5400`` → ``"1 h 30 min"``."""
    if s is None:
        return MISSING
    if s < 60:
        return f"{s:.1f} s"
    s = round(s)
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def format_accuracy(mean: float | None, std: float | None = None) -> str:
    """``"82.0"`` or, with a std, ``"82.0 ± 0.3"``."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return MISSING
    return f"{mean:.1f}" if std is None else f"{mean:.1f} ± {std:.1f}"


# -------------------------------------------------------------------------------------------- columns


@dataclass(frozen=True)
class Column:
    """One table column: ``key`` selects it in ``columns=``; ``field`` is the row key it reads."""

    key: str
    header: str
    field: str | None  # None: computed (method label, α)
    kind: str  # "text" | "accuracy" | "params" | "bytes" | "seconds"


def _columns(summary: Sequence[dict], selected: Sequence[str] | None) -> list[Column]:
    metrics = list(dict.fromkeys(metric_of(r) for r in summary)) or ["top1"]
    if len(metrics) > 1:
        raise ValueError(f"rows of different tasks in one table (metrics {metrics}); tabulate each task apart")
    metric = metrics[0]
    id_names = list(dict.fromkeys(r["id_set"] for r in summary if r.get("id_set")))
    ood_names = list(dict.fromkeys(n for r in summary for n in r.get("ood_sets") or []))
    other = [n for r in summary for n in eval_sets(r) if n not in id_names and n not in ood_names]
    cols = [Column("method", "method", None, "text"), Column("alpha", "α", None, "text")]
    cols += [Column(n, f"{n} (ID)", f"{n}:{metric}", "accuracy") for n in id_names]
    cols += [Column(n, n, f"{n}:{metric}", "accuracy") for n in dict.fromkeys(other)]
    cols += [Column(n, f"{n} (OOD)", f"{n}:{metric}", "accuracy") for n in ood_names]
    if any(f"HM:{metric}" in r for r in summary):
        cols.append(Column("HM", "HM (base, novel)", f"HM:{metric}", "accuracy"))
    cols += [
        Column("avg_ood", "avg OOD", f"avg_ood:{metric}", "accuracy"),
        Column("trainable_params", "trainable params", "trainable_params", "params"),
        Column("adapter_bytes", "adapter size", "adapter_bytes", "bytes"),
        Column("train_seconds", "train time", "train_seconds", "seconds"),
    ]
    if selected is None:
        return cols
    by_key = {c.key: c for c in cols}
    unknown = [k for k in selected if k not in by_key]
    if unknown:
        raise ValueError(f"unknown table columns {unknown}; available: {list(by_key)}")
    return [by_key[k] for k in selected]


def _cell(row: dict, col: Column) -> str:
    if col.key == "method":
        return method_label(str(row.get("method")))
    if col.key == "alpha":
        a = row.get("alpha")
        return MISSING if a is None else f"{a:g}"
    mean = row.get(col.field)
    std = row.get("std", {}).get(col.field)
    if col.kind == "accuracy":
        return format_accuracy(mean, std)
    fmt = {"params": format_params, "bytes": format_bytes, "seconds": format_seconds}[col.kind]
    # Sizes rarely vary across seeds; "± 0" would only add noise.
    return fmt(mean) if not std else f"{fmt(mean)} ± {fmt(std)}"


def to_markdown(rows: Sequence[dict], columns: Sequence[str] | None = None) -> str:
    """A GitHub Markdown table, one line per (method, α); raw rows are averaged over seeds first.

    Args:
        rows: result rows or summary rows.
        columns: column keys to keep, in order: ``method``, ``alpha``, eval-set names, ``avg_ood``,
            ``trainable_params``, ``adapter_bytes``, ``train_seconds``. Default: all.

    Returns:
        Header line, alignment line and one line per summary row (no trailing newline).
    """
    summary = as_summary(rows)
    cols = _columns(summary, columns)
    lines = [
        "| " + " | ".join(c.header for c in cols) + " |",
        "|" + "|".join("---" if c.kind == "text" else "---:" for c in cols) + "|",
    ]
    for row in summary:
        lines.append("| " + " | ".join(_cell(row, c).replace("|", "\\|") for c in cols) + " |")
    return "\n".join(lines)


def to_csv(rows: Sequence[dict], columns: Sequence[str] | None = None, path: str | Path | None = None) -> str:
    """The table as CSV for spreadsheets: raw numbers (no units), a ``… std`` column after each number.

    Same rows and ``columns`` as :func:`to_markdown`, plus ``n_seeds``. Std cells are empty for a
    single seed. Written to ``path`` too when given.
    """
    summary = as_summary(rows)
    cols = _columns(summary, columns)
    header: list[str] = []
    for c in cols:
        # Accuracy columns keep their table headers; the others get plain keys, since their cells are
        # raw counts, bytes and seconds here rather than "20.4 M", "78.0 MB", "1 h 06 min".
        name = c.header if c.kind == "accuracy" else c.key
        header += [name] if c.kind == "text" else [name, f"{name} std"]
    header.append("n_seeds")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in summary:
        out: list[Any] = []
        for c in cols:
            if c.key == "method":
                out.append(row.get("method"))
            elif c.key == "alpha":
                out.append("" if row.get("alpha") is None else row["alpha"])
            else:
                mean, std = row.get(c.field), row.get("std", {}).get(c.field)
                out += ["" if mean is None else mean, "" if std is None else std]
        out.append(row.get("n_seeds", 1))
        writer.writerow(out)
    text = buf.getvalue()
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text
