import math

import pytest
from matplotlib.figure import Figure
from reports_testdata import make_row, sample_rows

from radapter.reports import plot_alpha_curve, plot_id_vs_ood
from radapter.reports.plots import percent_ticks


@pytest.fixture
def rows():
    return sample_rows()


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _lines(fig):
    return {line.get_label(): line for line in fig.axes[0].get_lines()}


def test_id_vs_ood_writes_png_with_curves_and_points(rows, tmp_path):
    out = tmp_path / "sub" / "id_vs_ood.png"
    fig = plot_id_vs_ood(rows, out, title="demo")
    assert isinstance(fig, Figure)
    width, height = _png_size(out)
    assert 600 < width < 2500 and 500 < height < 2000  # 7 × 5.5 in at 150 dpi, trimmed
    assert out.stat().st_size > 10_000

    ax = fig.axes[0]
    assert ax.get_xscale() == "logit" and ax.get_yscale() == "logit"
    assert ax.get_title() == "demo"
    lines = _lines(fig)
    # ID 61–83 % and OOD 39–50 % never meet, so the y = x line would be off the plot: not drawn.
    assert set(lines) == {"Zero-shot", "FT", "WiSE-FT (α sweep)", "R-Adapter (α sweep)"}
    assert set(ax.get_legend_handles_labels()[1]) == set(lines)

    # Curves: α-ordered, seed means, on fractions (logit axes).
    wise = lines["WiSE-FT (α sweep)"]
    assert wise.get_gid() == "wiseft"
    assert list(wise.get_xdata()) == pytest.approx([0.61, 0.75, 0.81])
    assert list(wise.get_ydata()) == pytest.approx([0.465, 0.50, 0.39])
    assert len(lines["R-Adapter (α sweep)"].get_xdata()) == 3
    zs = lines["Zero-shot"]
    assert (zs.get_xdata()[0], zs.get_ydata()[0]) == pytest.approx((0.61, 0.465))  # mean over 2 seeds
    assert zs.get_linestyle() == "None"

    # α labels written on the curves; α = 0 is the zero-shot star, so not labelled again.
    texts = [t.get_text() for t in ax.texts]
    assert texts.count("α=0.5") == 2 and texts.count("α=1") == 2 and "α=0" not in texts

    # Tick labels are percentages inside the axis range.
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels and all(t.endswith("%") for t in labels)
    lo, hi = ax.get_xlim()
    assert all(lo <= v <= hi for v in ax.get_xticks())


def test_id_vs_ood_any_subset(rows, tmp_path):
    only_points = [r for r in rows if r["method"] in ("zeroshot", "ft")]
    fig = plot_id_vs_ood(only_points, tmp_path / "a.png")
    assert {"Zero-shot", "FT"} <= set(_lines(fig))
    assert not any("sweep" in label for label in _lines(fig))

    one_alpha = [r for r in rows if r["method"] == "radapter" and r["alpha"] == 0.5]
    fig = plot_id_vs_ood(one_alpha, tmp_path / "b.png", reference_line=False)
    assert set(_lines(fig)) == {"R-Adapter, α=0.5"}
    assert (tmp_path / "b.png").stat().st_size > 5_000


def test_id_vs_ood_clips_0_and_100_percent(tmp_path):
    rows = [make_row("ft", None, 0, 100.0, [0.0, 0.0]), make_row("zeroshot", None, 0, 50.0, [50.0, 50.0])]
    fig = plot_id_vs_ood(rows, tmp_path / "c.png")
    lines = _lines(fig)
    assert lines["y = x"].get_gid() == "reference" and lines["y = x"].get_linestyle() == "--"
    ft = lines["FT"]
    assert 0 < ft.get_ydata()[0] < 0.01 and 0.99 < ft.get_xdata()[0] < 1
    lo, hi = fig.axes[0].get_ylim()
    assert math.isfinite(lo) and math.isfinite(hi) and 0 < lo < hi < 1


def test_id_vs_ood_without_usable_rows_says_so(tmp_path):
    with pytest.raises(ValueError, match="nothing to plot"):
        plot_id_vs_ood([{"method": "ft", "alpha": None, "seed": 0}], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_alpha_curve(rows, tmp_path):
    out = tmp_path / "alpha.png"
    fig = plot_alpha_curve(rows, out)
    assert _png_size(out)[0] > 500
    lines = _lines(fig)
    assert set(lines) == {"WiSE-FT: ID", "WiSE-FT: avg OOD", "R-Adapter: ID", "R-Adapter: avg OOD"}
    assert list(lines["R-Adapter: ID"].get_xdata()) == [0.0, 0.5, 1.0]
    assert list(lines["R-Adapter: avg OOD"].get_ydata()) == pytest.approx([46.5, 53.0, 49.5])
    fig = plot_alpha_curve(rows, None, methods=["radapter"])
    assert len(fig.axes[0].get_lines()) == 2
    with pytest.raises(ValueError, match="two or more α"):
        plot_alpha_curve([r for r in rows if r["alpha"] is None], None)


@pytest.mark.parametrize(
    "lo, hi, expected",
    [(67.0, 84.0, [70, 75, 80]), (40.0, 62.0, [40, 45, 50, 55, 60]), (77.3, 78.2, [77.4, 77.6, 77.8, 78.0, 78.2])],
)
def test_percent_ticks(lo, hi, expected):
    assert percent_ticks(lo, hi) == pytest.approx(expected)
