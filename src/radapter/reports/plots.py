"""Figures: the WiSE-FT ID-vs-OOD plot and accuracy against the re-scaling coefficient α.

Robust fine-tuning methods are compared by curves, not single points (Wortsman et al., WiSE-FT,
CVPR 2022, Fig. 1): x = ID top-1, y = average OOD top-1, both on a logit scale, p → log(p / (1 − p)),
where linear trends between ID and OOD accuracy show up as straight lines. Ticks are labelled in
percent. Accuracies of exactly 0 % or 100 % are clipped to 0.1 % / 99.9 % so they stay on the axis.

The figures are built on a bare :class:`matplotlib.figure.Figure` with the Agg canvas, never through
``pyplot``: no global state, no backend switch, safe in tests and worker processes. Each function
returns the Figure; every plotted line carries the method key as its ``gid``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from radapter.reports.tables import as_summary, avg_ood, id_score, method_label, metric_label, metric_of

DPI = 150
_CLIP = 0.001  # fractions are kept inside [_CLIP, 1 - _CLIP] on logit axes

# Fixed colours for the methods every report shows, so figures of different runs read alike.
_STYLE = {
    "zeroshot": {"color": "black", "marker": "*", "markersize": 14},
    "ft": {"color": "tab:red", "marker": "s", "markersize": 8},
    "wiseft": {"color": "tab:blue", "marker": "o", "markersize": 5},
    "radapter": {"color": "tab:orange", "marker": "D", "markersize": 5},
    "lpft": {"color": "tab:purple", "marker": "^", "markersize": 8},
    "flyp": {"color": "tab:green", "marker": "v", "markersize": 8},
    "lora": {"color": "tab:brown", "marker": "P", "markersize": 9},
}
_SPARE = ["tab:pink", "tab:olive", "tab:cyan", "tab:gray", "gold", "navy", "teal", "crimson"]
_SPARE_MARKERS = ["X", "h", "p", "<", ">", "d", "8", "H"]


def _style(method: str, spare_index: int) -> dict:
    if method in _STYLE:
        return dict(_STYLE[method])
    return {
        "color": _SPARE[spare_index % len(_SPARE)],
        "marker": _SPARE_MARKERS[spare_index % len(_SPARE_MARKERS)],
        "markersize": 8,
    }


def _new_figure(figsize: tuple[float, float]) -> Figure:
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, out_png: str | Path) -> None:
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=DPI, bbox_inches="tight")


def _points(rows: Sequence[dict]) -> dict[str, list[tuple[float | None, float, float]]]:
    """method → [(α, ID %, avg OOD %)], α-sorted; rows without ID or OOD accuracy are left out."""
    by_method: dict[str, list[tuple[float | None, float, float]]] = {}
    for row in as_summary(rows):
        x, y = id_score(row), avg_ood(row)
        if x is None or y is None:
            continue
        by_method.setdefault(row["method"], []).append((row.get("alpha"), x, y))
    for pts in by_method.values():
        pts.sort(key=lambda p: (p[0] is not None, p[0] if p[0] is not None else 0.0))
    return by_method


def _frac(p: float) -> float:
    return min(max(p / 100.0, _CLIP), 1.0 - _CLIP)


def _logit(f: float) -> float:
    return math.log(f / (1.0 - f))


def _expit(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def _logit_limits(values: Sequence[float], pad: float = 0.12, min_span: float = 0.5) -> tuple[float, float]:
    """Axis limits (fractions) around ``values`` with padding measured in logit units."""
    z = [_logit(v) for v in values]
    lo, hi = min(z), max(z)
    if hi - lo < min_span:
        mid = (lo + hi) / 2
        lo, hi = mid - min_span / 2, mid + min_span / 2
    span = hi - lo
    return max(_expit(lo - pad * span), _CLIP / 2), min(_expit(hi + pad * span), 1 - _CLIP / 2)


def percent_ticks(lo: float, hi: float, max_ticks: int = 7) -> list[float]:
    """Round percentages inside ``[lo, hi]`` (percent), the finest step that gives ≤ ``max_ticks``."""
    for step in (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 25):
        first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
        ticks = [round(k * step, 6) for k in range(first, last + 1) if 0 < k * step < 100]
        if len(ticks) <= max_ticks:
            return ticks
    return [50.0]


def _percent_axis(axis, lo: float, hi: float) -> None:
    """Logit scale on fractions, labelled with round percentages, no minor labels."""
    ticks = percent_ticks(lo * 100, hi * 100)
    axis.set_major_locator(FixedLocator([t / 100 for t in ticks]))
    axis.set_major_formatter(FuncFormatter(lambda f, _: f"{f * 100:.6g}%"))
    axis.set_minor_locator(NullLocator())


def _set_names(rows: Sequence[dict]) -> tuple[str | None, list[str]]:
    id_set = next((r["id_set"] for r in rows if r.get("id_set")), None)
    ood = list(dict.fromkeys(n for r in rows for n in r.get("ood_sets") or []))
    return id_set, ood


def _alpha_labels(alphas: list[float]) -> list[float]:
    """A few α values worth printing on a curve: the ends and the middle."""
    wanted = [a for a in alphas if any(math.isclose(a, w) for w in (0.0, 0.5, 1.0))]
    if len(wanted) < 2:
        wanted = sorted({alphas[0], alphas[len(alphas) // 2], alphas[-1]})
    return wanted


def _annotate_alpha(ax, xs, ys, i, text, color, below: bool, spans) -> None:
    """Write ``text`` beside point ``i`` of a curve, offset perpendicular to the curve so it never sits on it."""
    zx = [_logit(x) for x in xs]
    zy = [_logit(y) for y in ys]
    j, k = max(i - 1, 0), min(i + 1, len(xs) - 1)
    # Tangent in axis-fraction units, so the normal is perpendicular on screen.
    sx = _logit(spans[0][1]) - _logit(spans[0][0])
    sy = _logit(spans[1][1]) - _logit(spans[1][0])
    tx, ty = (zx[k] - zx[j]) / sx, (zy[k] - zy[j]) / sy
    norm = math.hypot(tx, ty) or 1.0
    nx, ny = -ty / norm, tx / norm  # left normal
    if (ny > 0) == below:
        nx, ny = -nx, -ny
    ax.annotate(
        text,
        (xs[i], ys[i]),
        textcoords="offset points",
        xytext=(12 * nx, 12 * ny),
        ha="left" if nx > 0.3 else "right" if nx < -0.3 else "center",
        va="bottom" if ny > 0.3 else "top" if ny < -0.3 else "center",
        fontsize=8,
        color=color,
    )


def plot_id_vs_ood(
    rows: Sequence[dict],
    out_png: str | Path | None,
    title: str | None = None,
    reference_line: bool = True,
) -> Figure:
    """The WiSE-FT figure: ID top-1 against average OOD top-1, both axes logit-scaled.

    Methods with two or more α values (``wiseft``, ``radapter`` sweeps) are drawn as connected,
    α-ordered curves with a few α values written next to them; every other (method, α) is one marker.
    Any subset of methods works. Raw rows are averaged over seeds first.

    Args:
        rows: result rows or summary rows (see :mod:`radapter.reports.tables`).
        out_png: where to write the 150-dpi PNG (parents created); None to only build the figure.
        title: figure title; default "ID vs. OOD accuracy".
        reference_line: draw the dashed y = x line.

    Returns:
        The figure. Each line's ``gid`` is the method key (``"reference"`` for y = x) and its label
        the legend text.

    Raises:
        ValueError: no row has both an ID and an OOD top-1.
    """
    summary = as_summary(rows)
    points = _points(summary)
    if not points:
        raise ValueError("no result row has both an ID top-1 (id_set) and OOD top-1 (ood_sets); nothing to plot")
    xs = [_frac(x) for pts in points.values() for _, x, _ in pts]
    ys = [_frac(y) for pts in points.values() for _, _, y in pts]
    xlim, ylim = _logit_limits(xs), _logit_limits(ys)

    fig = _new_figure((7.0, 5.5))
    ax = fig.add_subplot()
    ax.set_xscale("logit")
    ax.set_yscale("logit")

    # y = x only where it crosses the plotted box; a legend entry for an invisible line misleads.
    lo, hi = max(xlim[0], ylim[0]), min(xlim[1], ylim[1])
    if reference_line and lo < hi:
        ax.plot([lo, hi], [lo, hi], linestyle="--", color="0.6", linewidth=1, label="y = x", gid="reference", zorder=1)

    spare = 0
    n_curves = 0
    for method, pts in points.items():
        style = _style(method, spare)
        spare += method not in _STYLE
        label = method_label(method)
        curve = [p for p in pts if p[0] is not None]
        singles = pts if len(curve) < 2 else [p for p in pts if p[0] is None]
        if len(curve) >= 2:
            cx, cy = [_frac(p[1]) for p in curve], [_frac(p[2]) for p in curve]
            ax.plot(cx, cy, "-", linewidth=2, label=f"{label} (α sweep)", gid=method, zorder=3, **style)
            # α = 0 is the zero-shot model by construction; its star already marks that point.
            skip_zero = "zeroshot" in points
            for a in _alpha_labels([p[0] for p in curve]):
                if skip_zero and a == 0:
                    continue
                i = next(i for i, p in enumerate(curve) if math.isclose(p[0], a))
                _annotate_alpha(ax, cx, cy, i, f"α={a:g}", style["color"], below=n_curves % 2 == 0, spans=(xlim, ylim))
            n_curves += 1
        for alpha, x, y in singles:
            text = label if alpha is None or method in ("zeroshot", "ft") else f"{label}, α={alpha:g}"
            ax.plot([_frac(x)], [_frac(y)], linestyle="none", label=text, gid=method, zorder=4, **style)

    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    _percent_axis(ax.xaxis, *xlim)
    _percent_axis(ax.yaxis, *ylim)
    ax.grid(True, which="major", color="0.9", linewidth=0.8)
    ax.set_axisbelow(True)

    id_set, ood = _set_names(summary)
    label = metric_label(metric_of(summary[0]))
    ax.set_xlabel(f"ID {label}{f' ({id_set})' if id_set else ''}, logit scale")
    ood_text = ", ".join(ood)
    if len(ood_text) > 30:
        ood_text = f"{len(ood)} sets"
    ax.set_ylabel(f"Avg OOD {label}{f' ({ood_text})' if ood else ''}, logit scale")
    ax.set_title(title or "ID vs. OOD accuracy")
    n_entries = len(ax.get_legend_handles_labels()[1])
    if n_entries > 7:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    else:
        ax.legend(loc="best", fontsize=8, framealpha=0.9)
    if out_png is not None:
        _save(fig, out_png)
    return fig


def plot_alpha_curve(
    rows: Sequence[dict],
    out_png: str | Path | None,
    methods: Sequence[str] | None = None,
    title: str | None = None,
) -> Figure:
    """ID and average OOD top-1 against α, one colour per method (solid = ID, dashed = avg OOD).

    Args:
        rows: result rows or summary rows.
        out_png: where to write the 150-dpi PNG; None to only build the figure.
        methods: method keys to draw; default every method evaluated at two or more α values.
        title: figure title; default "Accuracy vs. α".

    Returns:
        The figure; lines have ``gid`` = method key and labels "<Method>: ID" / "<Method>: avg OOD".

    Raises:
        ValueError: no selected method has two or more α values.
    """
    summary = as_summary(rows)
    points = {m: [p for p in pts if p[0] is not None] for m, pts in _points(summary).items()}
    points = {m: pts for m, pts in points.items() if len(pts) >= 2 and (methods is None or m in methods)}
    if not points:
        raise ValueError("no method was evaluated at two or more α values; nothing to plot against α")

    fig = _new_figure((6.5, 4.5))
    ax = fig.add_subplot()
    spare = 0
    for method, pts in points.items():
        style = _style(method, spare)
        spare += method not in _STYLE
        color, label = style["color"], method_label(method)
        alphas = [p[0] for p in pts]
        ax.plot(alphas, [p[1] for p in pts], "-o", color=color, markersize=4, label=f"{label}: ID", gid=method)
        ax.plot(alphas, [p[2] for p in pts], "--s", color=color, markersize=4, label=f"{label}: avg OOD", gid=method)
    ax.set_xlabel("α (0 = zero-shot, 1 = fine-tuned)")
    ax.set_ylabel(f"{metric_label(metric_of(next(iter(as_summary(rows)), {})))} (%)")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}%"))
    ax.grid(True, color="0.9", linewidth=0.8)
    ax.set_axisbelow(True)
    ax.set_title(title or "Accuracy vs. α")
    ax.legend(loc="best", fontsize=8, framealpha=0.9)
    if out_png is not None:
        _save(fig, out_png)
    return fig
