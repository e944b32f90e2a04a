"""What one task's part of ``radapter demo`` is, and the runner every part shares.

A part lists its rows: each is a method run (config overrides, trained through the same :class:`Run` as any
real job), a re-evaluation of another row's trained run with evaluation-only overrides (e.g. the no-EMA
ablation), a WiSE-FT of another row's fine-tuned run, or rows copied from another evaluation where the two are
identical by construction (α = 0 of a curve is the zero-shot model; each identity is tested bit for bit).
Every row runs once per seed; zero-shot is evaluated once for all seeds (it has no randomness).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field

from tqdm import tqdm

from ...backbones.loading import load_model
from ...config import load_config
from ...data.world import WORLD_CLIP_DIR
from ...reports import write_report
from ...runs import Run, evaluate_run

log = logging.getLogger("radapter")

WORLD_MODEL = str(WORLD_CLIP_DIR)


@dataclass
class DemoPart:
    """One task's benchmark on the offline world.

    Attributes:
        task: The task key (also the part's folder and ``--task`` name).
        title: Report title.
        common: Config overrides every run of the part shares.
        sizes: ``full`` / ``quick`` / ``ci`` overrides (data sizes, steps).
        runs: name → (overrides, reused run or None); overrides None: every row of it is a copy.
        copies: name → [(α, source method, source α)] rows copied from another evaluation.
        quick: The rows ``--quick`` runs.
        checks: ``(results.json document, model parameter count) -> [{target, value, pass}]``.
        point_alpha: The α that stands for a swept method in ``results.json``.
        id_shift_set: The eval set reported as ``id_shift``: a name, ``""`` for none, or None to take the one set
            that is neither the ID set nor OOD, if there is exactly one.
        wiseft_of: name → the fine-tuned row it interpolates (``method.wiseft.ft_model``).
    """

    task: str
    title: str
    common: dict
    sizes: dict[str, dict]
    runs: dict[str, tuple[dict | None, str | None]]
    copies: dict[str, list[tuple[float, str, float | None]]]
    quick: list[str]
    checks: Callable[[dict, int], list[dict]]
    point_alpha: float | dict = 0.5
    id_shift_set: str | None = None
    wiseft_of: dict[str, str] = field(default_factory=dict)


WALL = "demo_wall_seconds.json"


def _train(overrides: dict, out: str) -> tuple[list[dict], float]:
    t0 = time.perf_counter()
    rows = Run(load_config(None, {**overrides, "out": out})).run()
    seconds = time.perf_counter() - t0
    with open(os.path.join(out, WALL), "w", encoding="utf-8") as f:
        json.dump({"wall_seconds": seconds}, f)
    return rows, seconds


def _train_in_worker(overrides: dict, out: str) -> float:
    """A trained row run in a worker process (results land in its run folder; only the time comes back)."""
    logging.getLogger("radapter").setLevel(logging.WARNING)
    return _train(overrides, out)[1]


def _independent(part: DemoPart, seed: int, name: str) -> bool:
    """Rows that train a run of their own, needing no other row: these can run in parallel processes."""
    overrides, reuse = part.runs[name]
    return overrides is not None and reuse is None and name not in part.wiseft_of and not (name == "zeroshot" and seed)


def train_independent_rows(part: DemoPart, jobs: list[tuple[int, str]], base: dict, out: str, workers: int) -> None:
    """Trains the independent rows of ``jobs`` in ``workers`` processes (each with ``base["threads"]`` torch
    threads), writing each run folder; the sequential pass then reads them. Every run is seeded and isolated,
    so the results do not depend on the number of workers or the order they finish in."""
    todo = [
        (seed, name)
        for seed, name in jobs
        if _independent(part, seed, name)
        and not os.path.exists(os.path.join(out, "runs", f"seed{seed}", name, "results.jsonl"))
    ]
    if workers <= 1 or len(todo) <= 1:
        return
    context = multiprocessing.get_context("spawn")  # fresh interpreters: no forked OpenMP state
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {
            pool.submit(
                _train_in_worker,
                {**base, **part.runs[name][0], "seed": seed},
                os.path.join(out, "runs", f"seed{seed}", name),
            ): (seed, name)
            for seed, name in todo
        }
        for future in tqdm(
            as_completed(futures), total=len(futures), desc=f"demo {part.task}: training", dynamic_ncols=True
        ):
            future.result()


def _reuse(name: str, overrides: dict, run_dir: str) -> tuple[list[dict], float]:
    t0 = time.perf_counter()
    rows = evaluate_run(run_dir, overrides, f"{name}.jsonl")
    return rows, time.perf_counter() - t0


_ANY = object()


def find_row(rows: list[dict], method: str, seed: int, alpha: float | None | object = _ANY) -> dict:
    """The first row of ``method`` at ``seed`` (and at ``alpha``, when given) among the rows run so far."""
    for r in rows:
        if r["method"] == method and r["seed"] == seed and (alpha is _ANY or r.get("alpha") == alpha):
            return r
    raise KeyError(f"demo: no {method} row at seed {seed}, α = {alpha} yet: it must run before the methods using it")


def method_rows(part: DemoPart, name: str, seed: int, rows: list[dict], base: dict, out: str):
    """One row's result rows for one seed, and the wall time they cost (training + evaluation)."""
    overrides, reuse = part.runs[name]
    seconds = 0.0
    run_dir = os.path.join(out, "runs", f"seed{seed}", name)
    if name == "zeroshot" and seed > 0:
        # nothing is trained and evaluation has no randomness: seed 0's evaluation stands for every seed
        got = [dict(find_row(rows, name, 0, None))]
        seconds = got[0]["wall_seconds"]
    elif name in part.wiseft_of:
        source = part.wiseft_of[name]
        trained = find_row(rows, source, seed)
        ft_dir = os.path.join(out, "runs", f"seed{seed}", source)
        got, seconds = _train({**base, **overrides, "seed": seed, "method.wiseft.ft_model": ft_dir}, run_dir)
        seconds += trained["wall_seconds"]
    elif reuse:
        trained = find_row(rows, reuse, seed)
        got = []
        if overrides is not None:
            got, seconds = _reuse(name, overrides, os.path.join(out, "runs", f"seed{seed}", reuse))
        seconds += trained["wall_seconds"]
    elif os.path.exists(os.path.join(run_dir, "results.jsonl")):  # trained by a worker, or an interrupted demo
        got = [json.loads(line) for line in open(os.path.join(run_dir, "results.jsonl"), encoding="utf-8")]
        wall = os.path.join(run_dir, WALL)
        seconds = json.load(open(wall, encoding="utf-8"))["wall_seconds"] if os.path.isfile(wall) else 0.0
    else:
        got, seconds = _train({**base, **overrides, "seed": seed}, run_dir)
    meta = got[0] if got else trained  # copied rows report the size of the method they stand for
    own = {k: meta[k] for k in ("trainable_params", "adapter_bytes") if k in meta}
    for alpha, source, source_alpha in part.copies.get(name, []):
        got.append({**find_row(rows, source, seed, source_alpha), **own, "alpha": alpha, "copied_from": source})
    got.sort(key=lambda r: -1.0 if r.get("alpha") is None else r["alpha"])
    return got, seconds


def model_params(model: str = WORLD_MODEL) -> int:
    return sum(p.numel() for p in load_model(f"local-dir:{model}").model.parameters())


def checks_markdown(checks: list[dict], preview: bool = False) -> str:
    lines = ["## Targets", ""]
    if preview:
        lines += [
            "The targets are set for the full demo (3 seeds, full test sets); this smaller run is a preview, "
            "and a single cell of it moves by about a point between runs.",
            "",
        ]
    lines += ["| target | measured | |", "|---|---:|---|"]
    lines += [f"| {c['target']} | {c['value']} | {'✓' if c['pass'] else '✗'} |" for c in checks]
    return "\n".join(lines) + "\n"


def run_part(part: DemoPart, out: str, seeds: int, quick: bool, size: str, base: dict, workers: int = 1) -> dict:
    """Runs every row of ``part`` for each seed into ``out``; writes its results.json / report.md / plots.

    Args:
        workers: Processes that train the independent rows in parallel (each with ``base["threads"]`` threads).

    Returns:
        The ``results.json`` document, with ``checks`` and ``seconds_total`` added.
    """
    names = part.quick if quick else list(part.runs)
    base = {**part.common, **part.sizes[size], **base, "task": part.task}
    os.makedirs(out, exist_ok=True)
    rows: list[dict] = []
    t0 = time.perf_counter()
    jobs = [(seed, name) for seed in range(seeds) for name in names]
    train_independent_rows(part, jobs, base, out, workers)
    bar = tqdm(jobs, desc=f"radapter demo {part.task}", dynamic_ncols=True)
    for seed, name in bar:
        bar.set_postfix(seed=seed, method=name)
        got, seconds = method_rows(part, name, seed, rows, base, out)
        for r in got:
            r.pop("config", None)
            r["method"] = name
            r["seed"] = seed
            r["wall_seconds"] = round(seconds, 2)
        rows.extend(got)
        log.info("%s %s seed %d: %.1f s", part.task, name, seed, seconds)
    with open(os.path.join(out, "rows.jsonl"), "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    written = write_report(rows, out, title=part.title, point_alpha=part.point_alpha, id_shift_set=part.id_shift_set)
    doc = json.loads(written["results.json"].read_text(encoding="utf-8"))
    doc["checks"] = part.checks(doc, model_params())
    doc["seconds_total"] = round(time.perf_counter() - t0, 1)
    doc["threads"] = base.get("threads")
    doc["workers"] = workers
    written["results.json"].write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    preview = seeds < 3 or size != "full"
    with open(written["report.md"], "a", encoding="utf-8") as f:
        f.write(
            f"\n{checks_markdown(doc['checks'], preview)}\nWall time of this part: {doc['seconds_total'] / 60:.1f} min "
            f"({workers} worker process(es), {doc['threads']} torch thread(s) each).\n"
        )
    return doc
