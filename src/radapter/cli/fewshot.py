"""``radapter fewshot``: the few-shot protocols over datasets × methods × seeds, tabulated as the literature does.

* ``radapter fewshot base2new --dataset dtd[,eurosat,…|all] --shots 16 --seeds 1,2,3`` trains one ``base2new``
  run per dataset, method and seed and reports base, novel and HM per seed and their mean ± std; over several
  datasets, a table in the layout of CoCoOp's Table 1 with the average over datasets first.
* ``radapter fewshot xd --source imagenet --targets caltech101,…`` trains one ``cross_dataset`` run per method and
  seed and reports the source and each target's accuracy and the average over the targets (CoCoOp's Table 2).

Every run is an ordinary run folder (``OUT/<dataset>/<method>/seed<k>``) with its results.jsonl, few-shot cache and
class lists; a finished run is read back instead of trained again (a run whose training settings differ is an
error), an interrupted one is resumed. The tables go to ``OUT/base2new.{md,csv,json}`` / ``OUT/xd.{md,csv,json}``.
A method's number is its deploy-α row (R-Adapter, WiSE-FT) or its only row. HM in the tables is the harmonic mean
of the mean base and mean novel accuracies, as CoCoOp and MaPLe report it; the JSON also has the mean ± std of the
per-seed HMs.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import statistics
from typing import Any

from ..config import ConfigError, build_dataclass, load_config, load_yaml
from ..data.coop import DEFAULT_SEEDS, coop_dataset_names, get_coop_dataset
from ..reports.tables import format_accuracy, method_label
from ..runs import Run, changed_training_keys
from ..tasks.fewshot import harmonic_mean
from ..utils import atomic_write_text

#: How the literature's tables name the datasets.
DISPLAY = {
    "imagenet": "ImageNet",
    "caltech101": "Caltech101",
    "oxford_pets": "OxfordPets",
    "stanford_cars": "StanfordCars",
    "oxford_flowers": "Flowers102",
    "food101": "Food101",
    "fgvc_aircraft": "FGVCAircraft",
    "sun397": "SUN397",
    "dtd": "DTD",
    "eurosat": "EuroSAT",
    "ucf101": "UCF101",
}
LABELS = {"coop": "CoOp"}


def add_fewshot_parser(sub: argparse._SubParsersAction) -> None:
    """Adds ``fewshot base2new`` and ``fewshot xd`` to the ``radapter`` parser."""
    p = sub.add_parser("fewshot", help="few-shot protocols: base-to-novel (base2new) and cross-dataset (xd)")
    protocols = p.add_subparsers(dest="protocol", required=True)
    b = protocols.add_parser("base2new", help="train on base classes; base / novel top-1 and HM per dataset")
    b.add_argument("--dataset", required=True, help="comma-separated CoOp datasets, or 'all' (the 11)")
    x = protocols.add_parser("xd", help="train on a source dataset; top-1 on each target and their average")
    x.add_argument("--source", default="imagenet", help="the training dataset (default imagenet)")
    x.add_argument("--targets", required=True, help="comma-separated target datasets, or 'all' (the other 10)")
    for q in (b, x):
        q.add_argument("--config", help="YAML preset file or built-in preset name (see `radapter presets`)")
        q.add_argument("--shots", type=int, default=None, help="K shots per class (default: the preset's, 16)")
        q.add_argument("--seeds", default=",".join(map(str, DEFAULT_SEEDS)), help="comma-separated (default 1,2,3)")
        q.add_argument("--root", default=None, help="$DATA: the folder holding the datasets (data.coop.root)")
        q.add_argument("--method", dest="methods", default=None, help="comma-separated methods (default: the preset's)")
        q.add_argument("--out", dest="dest", default=None, help="output folder (default runs/fewshot/<protocol>)")


def _names(text: str, where: str, exclude: str | None = None) -> list[str]:
    if text.strip() == "all":
        return [n for n in coop_dataset_names() if n != exclude]
    out = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        try:
            out.append(get_coop_dataset(item).name)
        except KeyError as e:
            raise ConfigError(f"{where}: {e.args[0]}") from None
    if not out:
        raise ConfigError(f"{where}: no dataset given")
    return out


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--seeds: expected comma-separated integers, got {text!r}") from None
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds: expected distinct non-negative integers, got {text!r}")
    return seeds


def _methods(text: str | None, args, overrides: dict) -> list[str]:
    if text:
        return [m.strip() for m in text.split(",") if m.strip()]
    return [load_config(args.config, overrides).method.name]


def run_one(args, overrides: dict[str, Any], extra: dict[str, Any], out: str) -> dict:
    """The deploy-α result row of one run: trained (or resumed), or read back when it finished before."""
    cfg = load_config(args.config, {**overrides, **extra, "out": out})
    results = os.path.join(out, "results.jsonl")
    if os.path.isfile(results):
        saved = build_dataclass(type(cfg), load_yaml(os.path.join(out, "config.yaml"))).to_dict()
        changed = changed_training_keys(saved, cfg.to_dict())
        if changed:
            raise ConfigError(
                f"{out}: holds a finished run trained with other settings ({'; '.join(changed)}); "
                "choose another --out or delete it"
            )
        with open(results, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
        print(f"reusing {out}")
    else:
        rows = Run(cfg, resume="auto").run()
    return pick_row(rows)


def pick_row(rows: list[dict]) -> dict:
    """The row a method reports: the one at its deploy α, or its only one."""
    chosen = [r for r in rows if r.get("default")] or [r for r in rows if r.get("alpha") is None]
    if len(chosen) != 1:
        raise ValueError(f"expected one deploy-α row among {len(rows)} rows, found {len(chosen)}")
    return {k: v for k, v in chosen[0].items() if k != "config"}


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def _label(method: str) -> str:
    return LABELS.get(method, method_label(method))


# --- base-to-novel --------------------------------------------------------------------------------------------
def summarize_base2new(per_seed: list[dict]) -> dict[str, Any]:
    """Per (dataset, method): base / novel mean ± std over seeds, HM of the means, mean ± std of per-seed HMs;
    over several datasets, the average of the per-dataset means and its HM (``per_seed`` rows as in
    :func:`base2new_rows`)."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in per_seed:
        groups.setdefault((r["dataset"], r["method"]), []).append(r)
    summary = []
    for (dataset, method), rows in groups.items():
        entry: dict[str, Any] = {"dataset": dataset, "method": method, "seeds": [r["seed"] for r in rows]}
        for key in ("base", "novel", "HM"):
            entry[key], entry[f"{key}_std"] = _mean_std([r[key] for r in rows])
        entry["HM_of_means"] = harmonic_mean(entry["base"], entry["novel"])
        summary.append(entry)
    average = []
    datasets = list(dict.fromkeys(s["dataset"] for s in summary))
    if len(datasets) > 1:
        for method in dict.fromkeys(s["method"] for s in summary):
            mine = [s for s in summary if s["method"] == method]
            base = statistics.fmean(s["base"] for s in mine)
            novel = statistics.fmean(s["novel"] for s in mine)
            average.append(
                {"method": method, "datasets": [s["dataset"] for s in mine], "base": base, "novel": novel}
                | {"HM": harmonic_mean(base, novel)}
            )
    return {"summary": summary, "average": average}


def base2new_markdown(doc: dict) -> str:
    shots, seeds = doc["shots"], ", ".join(map(str, doc["seeds"]))
    lines = [
        f"# Base-to-novel generalisation ({shots} shots, seeds {seeds})",
        "",
        "Top-1 accuracy (%) on the base classes (head over the base classes) and on the novel classes (head over "
        "the novel classes), mean ± std over seeds; HM = harmonic mean of the mean base and mean novel accuracies.",
        "",
        "| dataset | method | base | novel | HM |",
        "|---|---|---:|---:|---:|",
    ]
    for a in doc["average"]:
        name = f"Average over {len(a['datasets'])} datasets"
        lines.append(f"| {name} | {_label(a['method'])} | {a['base']:.2f} | {a['novel']:.2f} | {a['HM']:.2f} |")
    for s in doc["summary"]:
        cells = [format_accuracy(s[k], s[f"{k}_std"]) for k in ("base", "novel")]
        lines.append(
            f"| {DISPLAY.get(s['dataset'], s['dataset'])} | {_label(s['method'])} | {cells[0]} | {cells[1]} | "
            f"{s['HM_of_means']:.1f} |"
        )
    lines += ["", "Per seed:", "", "| dataset | method | seed | base | novel | HM |", "|---|---|---:|---:|---:|---:|"]
    for r in doc["rows"]:
        lines.append(
            f"| {DISPLAY.get(r['dataset'], r['dataset'])} | {_label(r['method'])} | {r['seed']} | {r['base']:.1f} | "
            f"{r['novel']:.1f} | {r['HM']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def base2new_csv(doc: dict) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["dataset", "method", "seed", "base", "base std", "novel", "novel std", "HM", "HM std", "n_seeds"])
    for r in doc["rows"]:
        w.writerow([r["dataset"], r["method"], r["seed"], r["base"], "", r["novel"], "", r["HM"], "", 1])
    for s in doc["summary"]:
        std = [("" if s[f"{k}_std"] is None else s[f"{k}_std"]) for k in ("base", "novel", "HM")]
        # HM of the means, with the std of the per-seed HMs
        w.writerow(
            [s["dataset"], s["method"], "mean", s["base"], std[0], s["novel"], std[1], s["HM_of_means"], std[2]]
            + [len(s["seeds"])]
        )
    for a in doc["average"]:
        w.writerow(["average", a["method"], "mean", a["base"], "", a["novel"], "", a["HM"], "", len(doc["seeds"])])
    return buf.getvalue()


def base2new_rows(row: dict, dataset: str, method: str, seed: int) -> dict:
    return {
        "dataset": dataset,
        "method": method,
        "seed": seed,
        "alpha": row.get("alpha"),
        "base": row["base:top1"],
        "novel": row["novel:top1"],
        "HM": row["HM:top1"],
    }


# --- cross-dataset ---------------------------------------------------------------------------------------------
def summarize_xd(per_seed: list[dict], source: str, targets: list[str]) -> list[dict]:
    """Per method: mean ± std over seeds of the source, each target and the average over targets."""
    out = []
    for method in dict.fromkeys(r["method"] for r in per_seed):
        rows = [r for r in per_seed if r["method"] == method]
        entry: dict[str, Any] = {"method": method, "seeds": [r["seed"] for r in rows]}
        for key in [source, *targets, "average"]:
            entry[key], entry[f"{key}_std"] = _mean_std([r[key] for r in rows])
        out.append(entry)
    return out


def xd_markdown(doc: dict) -> str:
    source, targets = doc["source"], doc["targets"]
    keys = [source, *targets, "average"]
    heads = [f"{DISPLAY.get(source, source)} (source)"] + [DISPLAY.get(t, t) for t in targets] + ["Average"]
    lines = [
        f"# Cross-dataset transfer ({doc['shots']} shots of {DISPLAY.get(source, source)}, seeds "
        f"{', '.join(map(str, doc['seeds']))})",
        "",
        "Top-1 accuracy (%) on each dataset's test set with all its classes and its own template, mean ± std over "
        "seeds; Average = mean over the targets (the source excluded).",
        "",
        "| method | " + " | ".join(heads) + " |",
        "|---|" + "---:|" * len(heads),
    ]
    for s in doc["summary"]:
        cells = [format_accuracy(s[k], s[f"{k}_std"]) for k in keys]
        lines.append(f"| {_label(s['method'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def xd_csv(doc: dict) -> str:
    keys = [doc["source"], *doc["targets"], "average"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["method", "seed", *[c for k in keys for c in (k, f"{k} std")]])
    for r in doc["rows"]:
        w.writerow([r["method"], r["seed"], *[c for k in keys for c in (r[k], "")]])
    for s in doc["summary"]:
        w.writerow(
            [s["method"], "mean", *[c for k in keys for c in (s[k], "" if s[f"{k}_std"] is None else s[f"{k}_std"])]]
        )
    return buf.getvalue()


# --- the command ------------------------------------------------------------------------------------------------
def _write(out: str, stem: str, doc: dict, markdown: str, table_csv: str) -> None:
    atomic_write_text(os.path.join(out, f"{stem}.json"), json.dumps(doc, indent=2) + "\n")
    atomic_write_text(os.path.join(out, f"{stem}.md"), markdown)
    atomic_write_text(os.path.join(out, f"{stem}.csv"), table_csv)
    print(markdown)
    print(f"written: {os.path.join(out, stem)}.md, .csv, .json")


def cmd_fewshot(args, overrides: dict[str, Any]) -> int:
    seeds = _seeds(args.seeds)
    common: dict[str, Any] = {"data.kind": "coop"}
    if args.shots is not None:
        common["data.coop.shots"] = args.shots
    if args.root is not None:
        common["data.coop.root"] = args.root
    methods = _methods(args.methods, args, overrides)
    out = args.dest or os.path.join("runs", "fewshot", args.protocol)
    if args.protocol == "base2new":
        datasets = _names(args.dataset, "--dataset")
        per_seed = []
        for dataset in datasets:
            for method in methods:
                for seed in seeds:
                    extra = {**common, "task": "base2new", "data.coop.dataset": dataset, "method.name": method}
                    row = run_one(
                        args, overrides, {**extra, "seed": seed}, os.path.join(out, dataset, method, f"seed{seed}")
                    )
                    per_seed.append(base2new_rows(row, dataset, method, seed))
        shots = row["shots"]
        doc = {"protocol": "base2new", "shots": shots, "seeds": seeds, "rows": per_seed, **summarize_base2new(per_seed)}
        _write(out, "base2new", doc, base2new_markdown(doc), base2new_csv(doc))
        return 0
    source = _names(args.source, "--source")
    if len(source) != 1:
        raise ConfigError(f"--source: one dataset, got {args.source!r}")
    source = source[0]
    targets = _names(args.targets, "--targets", exclude=source)
    per_seed = []
    for method in methods:
        for seed in seeds:
            extra = {**common, "task": "cross_dataset", "data.coop.dataset": source, "data.coop.targets": targets}
            extra |= {"method.name": method, "seed": seed}
            row = run_one(args, overrides, extra, os.path.join(out, source, method, f"seed{seed}"))
            entry = {"method": method, "seed": seed, "alpha": row.get("alpha"), source: row[f"{source}:top1"]}
            entry |= {t: row[f"{t}:top1"] for t in targets}
            entry["average"] = statistics.fmean(entry[t] for t in targets)
            per_seed.append(entry)
    doc = {"protocol": "xd", "source": source, "targets": targets, "shots": row["shots"], "seeds": seeds}
    doc |= {"rows": per_seed, "summary": summarize_xd(per_seed, source, targets)}
    _write(out, "xd", doc, xd_markdown(doc), xd_csv(doc))
    return 0
