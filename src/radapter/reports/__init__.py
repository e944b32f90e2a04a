"""Reports: result tables (Markdown/CSV), the WiSE-FT ID-vs-OOD figure, report folders.

Plain Python + matplotlib (Agg, no pyplot); nothing here imports torch.
"""

from radapter.reports.plots import plot_alpha_curve, plot_id_vs_ood
from radapter.reports.report import curve_gaps, report_markdown, to_results_json, write_report
from radapter.reports.tables import (
    avg_ood,
    eval_sets,
    format_accuracy,
    format_bytes,
    format_params,
    format_seconds,
    id_top1,
    load_results,
    method_label,
    summarize,
    to_csv,
    to_markdown,
)

__all__ = [
    "avg_ood",
    "curve_gaps",
    "eval_sets",
    "format_accuracy",
    "format_bytes",
    "format_params",
    "format_seconds",
    "id_top1",
    "load_results",
    "method_label",
    "plot_alpha_curve",
    "plot_id_vs_ood",
    "report_markdown",
    "summarize",
    "to_csv",
    "to_markdown",
    "to_results_json",
    "write_report",
]
