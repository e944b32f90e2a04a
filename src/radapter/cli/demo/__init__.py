"""``radapter demo``: the paper's claims on the built-in offline world, one part per task, on a laptop CPU.

Each part (:mod:`.classification`, …) trains every method of its table through the same runs as real data and
checks the paper's story with targets; ``--task NAME`` runs one part. Output: ``OUT/<task>/`` per part
(``results.json``, ``report.md``, plots, the runs) and ``OUT/results.json`` / ``OUT/report.md`` over all parts.
"""

from __future__ import annotations

import json
import os
import time

from ...errors import ConfigError, InputFileError
from ...utils.perf import choose_threads
from . import base2new, classification, retrieval
from .parts import WORLD_MODEL, DemoPart, run_part
from .segmentation import PART as SEGMENTATION_PART

PARTS: dict[str, DemoPart] = {p.task: p for p in (classification.PART, retrieval.PART, base2new.PART)}
PARTS[SEGMENTATION_PART.task] = SEGMENTATION_PART


def run_demo(
    out: str = "runs/demo",
    seeds: int = 3,
    quick: bool = False,
    size: str = "full",
    precision: str = "fp32",
    threads: int | None = None,
    tasks: list[str] | None = None,
    workers: int | None = None,
) -> dict:
    """Runs the demo's parts (all, or ``tasks``) and writes the combined ``results.json`` and ``report.md``.

    Every run uses ``threads`` torch threads (default 1: the demo's numbers are measured that way, since a
    reduction's order, and so its last bits, can depend on the thread count) and ``workers`` processes train
    independent runs side by side (default: the cores / threads), so the results do not depend on how
    many cores the machine has — only the wall time does.
    """
    if not os.path.isfile(os.path.join(WORLD_MODEL, "open_clip_config.json")):
        raise InputFileError(
            f"{WORLD_MODEL}: the shipped world CLIP is missing (reinstall radapter, or "
            "rebuild it with scripts/pretrain_world.py)"
        )
    unknown = [t for t in tasks or [] if t not in PARTS]
    if unknown:
        raise ConfigError(f"demo --task: unknown {unknown}; parts: {', '.join(PARTS)}")
    if quick and size == "full":
        size = "quick"
    threads = choose_threads(threads or 1)
    if workers is None:
        # one worker per core (the load average lags by a minute: right after another job it would pick 1 here)
        workers = max(1, (os.cpu_count() or 1) // threads)
    base = {"optim.precision": precision, "progress": False, "threads": threads}
    t0 = time.perf_counter()
    docs = {}
    for name in tasks or list(PARTS):
        docs[name] = run_part(PARTS[name], os.path.join(out, name), seeds, quick, size, base, workers)
    doc = {
        "tasks": docs,
        "seconds_total": round(time.perf_counter() - t0, 1),
        "threads": threads,
        "workers": workers,
        "size": size,
    }
    with open(os.path.join(out, "results.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(doc, indent=2) + "\n")
    report = _combined_report(out, docs, doc)
    print(report)
    print(f"written: {os.path.join(out, 'results.json')}, {os.path.join(out, 'report.md')} and one folder per part")
    return doc


def _combined_report(out: str, docs: dict, doc: dict) -> str:
    """``OUT/report.md``: every part's report (its plots linked from the part's folder) and the total time."""
    parts = ["# radapter demo (offline world)", ""]
    for name in docs:
        text = open(os.path.join(out, name, "report.md"), encoding="utf-8").read()
        text = text.replace("](", f"]({name}/").replace(f"]({name}/http", "](http")
        parts += ["#" + text.strip().replace("\n#", "\n##"), ""]
        passed = sum(c["pass"] for c in docs[name]["checks"])
        parts += [f"{name}: {passed} of {len(docs[name]['checks'])} targets hold.", ""]
    parts += [
        f"Wall time of the whole demo: {doc['seconds_total'] / 60:.1f} min ({doc['threads']} torch thread(s)).",
        "",
    ]
    text = "\n".join(parts)
    with open(os.path.join(out, "report.md"), "w", encoding="utf-8") as f:
        f.write(text)
    return text


__all__ = ["PARTS", "WORLD_MODEL", "DemoPart", "run_demo"]
