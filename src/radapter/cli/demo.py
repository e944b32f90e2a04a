"""``radapter demo``: the paper's story on the built-in offline world, on a laptop CPU, in minutes.

A tiny CLIP (open_clip architecture, shipped in ``radapter/assets/world_clip``) was pretrained once on a
procedural multi-domain image–caption world. The downstream task trains on one domain ("photo") whose
colour is correlated with the class (a spurious cue), and tests in-distribution (``id``), with the cue halved
(``id_shift``, like ImageNet-V2) and on every other domain without it (``ood_*``, like ImageNet-R/Sketch).
Every method runs through the same trainer and evaluator as real datasets; the world is just another dataset.

Recipes are the paper's, scaled to a ~200-step run: the EMA momentum 0.999 averages over ~1000 steps, far
longer than the whole run, so it is scaled to 0.99 (the same horizon relative to the run's length).
"""

from __future__ import annotations

import json
import logging
import os
import time

from ..config import load_config

log = logging.getLogger("radapter")

WORLD_MODEL = os.path.join(os.path.dirname(os.path.dirname(__file__)), "assets", "world_clip")

# shared by every run (paper recipe scaled to the world; see the module docstring)
COMMON = {
    "model.name": f"local-dir:{WORLD_MODEL}",
    "data.kind": "world",
    "data.templates": "world",
    "data.workers": 0,
    "optim.batch_size": 128,
    "optim.steps": 200,
    "optim.warmup_steps": 20,
    "optim.grad_clip": 1.0,
    "eval.batch_size": 500,
    "checkpoint_every": 0,
}
SIZES = {
    "full": {"data.world_train": 4000, "data.world_test": 1000},
    # --quick: a preview, with 500 test images per set instead of 1000
    "quick": {"data.world_train": 4000, "data.world_test": 500},
    "ci": {
        "data.world_train": 256,
        "data.world_test": 64,
        "optim.steps": 3,
        "optim.batch_size": 32,
        "optim.warmup_steps": 1,
    },
}
CURVE = [0.0, 0.25, 0.5, 0.75, 1.0]
RADAPTER = {
    "method.name": "radapter",
    "optim.lr": 3e-3,
    "optim.weight_decay": 0.0,
    "method.loss": "mpm_nce",
    "method.margin": 0.05,
    "method.label_smoothing": 0.02,
    "method.adapter.drop_prob": 0.2,
    "method.adapter.ema_momentum": 0.99,
    "method.adapter.alpha": 0.5,
    "eval.alphas": CURVE,
}
# name -> (overrides, trained run it reuses or None). Ablations that differ only at evaluation reuse a run.
RUNS: dict[str, tuple[dict, str | None]] = {
    "zeroshot": ({"method.name": "zeroshot"}, None),
    "ft": (
        {
            "method.name": "ft",
            "optim.lr": 3e-4,
            "optim.weight_decay": 0.1,
            "method.label_smoothing": 0.0,
            "eval.alphas": [1.0],
        },
        None,
    ),
    "wiseft": ({"method.name": "wiseft", "eval.alphas": CURVE}, "ft"),
    "lora": (
        {
            "method.name": "lora",
            "optim.lr": 3e-3,
            "method.lora_r": 8,
            "method.lora_alpha": 16.0,
            "method.label_smoothing": 0.02,
        },
        None,
    ),
    "flyp": ({"method.name": "flyp", "optim.lr": 1e-4, "optim.weight_decay": 0.1}, None),
    "radapter": (RADAPTER, None),
    "radapter-no-drop": ({**RADAPTER, "method.adapter.drop_prob": 0.0, "eval.alphas": [0.5]}, None),
    "radapter-no-ema": ({"method.use_ema": False, "eval.alphas": [0.5]}, "radapter"),
    "radapter-no-rescale": ({"eval.alphas": [1.0]}, "radapter"),
    "radapter-clip-loss": ({**RADAPTER, "method.loss": "clip", "eval.alphas": [0.5]}, None),
    "radapter-no-smoothing": ({**RADAPTER, "method.label_smoothing": 0.0, "eval.alphas": [0.5]}, None),
}
QUICK = ["zeroshot", "ft", "wiseft", "radapter", "radapter-no-ema", "radapter-no-rescale"]


def _train(name: str, overrides: dict, out: str) -> tuple[list[dict], float]:
    from ..training import Trainer

    t0 = time.perf_counter()
    cfg = load_config(None, {**overrides, "out": out})
    rows = Trainer(cfg).run()
    return rows, time.perf_counter() - t0


def _reuse(name: str, overrides: dict, run_dir: str) -> tuple[list[dict], float]:
    from .commands import _evaluate_run

    t0 = time.perf_counter()
    rows = _evaluate_run(run_dir, overrides, f"{name}.jsonl")
    return rows, time.perf_counter() - t0


def run_demo(
    out: str = "runs/demo", seeds: int = 3, quick: bool = False, size: str = "full", precision: str = "fp32"
) -> dict:
    """Runs every method for each seed and writes ``results.json``, ``report.md`` and ``id_vs_ood.png``."""
    from tqdm import tqdm

    from ..reports import write_report

    if not os.path.isfile(os.path.join(WORLD_MODEL, "open_clip_config.json")):
        raise FileNotFoundError(
            f"{WORLD_MODEL}: the shipped world CLIP is missing (reinstall radapter, or "
            "rebuild it with scripts/pretrain_world.py)"
        )
    names = QUICK if quick else list(RUNS)
    if quick and size == "full":
        size = "quick"
    base = {**COMMON, **SIZES[size], "optim.precision": precision, "progress": False}
    os.makedirs(out, exist_ok=True)
    rows: list[dict] = []
    jobs = [(seed, name) for seed in range(seeds) for name in names]
    bar = tqdm(jobs, desc="radapter demo", dynamic_ncols=True)
    for seed, name in bar:
        bar.set_postfix(seed=seed, method=name)
        overrides, reuse = RUNS[name]
        run_dir = os.path.join(out, "runs", f"seed{seed}", name)
        if reuse:
            got, seconds = _reuse(name, overrides, os.path.join(out, "runs", f"seed{seed}", reuse))
            trained = next(r for r in rows if r["method"] == reuse and r["seed"] == seed)
            seconds += trained["train_seconds"]
        else:
            if os.path.exists(os.path.join(run_dir, "results.jsonl")):  # resume an interrupted demo
                got = [json.loads(line) for line in open(os.path.join(run_dir, "results.jsonl"))]
                seconds = got[0].get("wall_seconds", 0.0)
            else:
                got, seconds = _train(name, {**base, **overrides, "seed": seed}, run_dir)
        for r in got:
            r.pop("config", None)
            r["method"] = name
            r["wall_seconds"] = round(seconds, 2)
            r.setdefault("train_seconds", seconds)
        rows.extend(got)
        log.info("%s seed %d: %.1f s", name, seed, seconds)
    for r in rows:  # report wall time per method (training + its evaluation)
        r["train_seconds"] = r["wall_seconds"]
    with open(os.path.join(out, "rows.jsonl"), "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    written = write_report(rows, out, title="radapter demo (offline world)", point_alpha=0.5, id_shift_set="id_shift")
    doc = json.loads(open(written["results.json"]).read())
    print(open(written["report.md"]).read())
    print(f"written: {', '.join(str(p) for p in written.values())}")
    return doc
