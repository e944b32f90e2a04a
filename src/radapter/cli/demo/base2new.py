"""``radapter demo --task base2new``: base-to-novel generalisation (CoCoOp's protocol) on the built-in world.

The world's 10 classes are cut into halves by sorted label (arrow … hourglass are *base*, house … triangle
*novel*). Every method trains on 16 shots of each base class (80 images, drawn with the run's seed) and is scored
on the base half of the ID test set with a base-class head and on the novel half with a novel-class head; HM is
the harmonic mean of the two (of the seed means, as the literature reports it). The rows: zero-shot, FT (image
tower + linear head; novel classes get the zero-shot head of its untouched text tower), WiSE-FT (α = 0.5), CoOp
(learned context, scored on novel classes with their own names), LoRA and R-Adapter (α = 0.5), all through the
same :class:`~radapter.runs.Run` as real data.

Recipe (the authors' base-to-novel recipe, scaled to the world): batch 32, 100 steps (40 epochs of the 80 base
images), 10 warm-up steps, gradient clipping 1, EMA momentum 0.9 (the paper's base-to-novel value; it averages
over ~10 steps, short against 100), adapter dropping 0.2, MPM-NCE with margin 0.1 and no label smoothing (LoRA
trains with the same loss and learning rate). Learning rates: R-Adapter and LoRA 5e-4 (the authors' value), FT
1e-4 with weight decay 0.1, CoOp 2e-3 with its context initialised from "a photo of a" (CoCoOp's CoOp baseline).
The sweep that chose them is in ``docs/fewshot.md``.
"""

from __future__ import annotations

from .parts import WORLD_MODEL, DemoPart

COMMON = {
    "model.name": f"local-dir:{WORLD_MODEL}",
    "data.kind": "world",
    "data.coop.templates": "coop",  # the world's own five templates
    "data.coop.shots": 16,
    "data.workers": 0,
    "optim.batch_size": 32,
    "optim.steps": 100,
    "optim.warmup_steps": 10,
    "optim.grad_clip": 1.0,
    "optim.weight_decay": 0.0,
    "eval.batch_size": 500,
    "checkpoint_every": 0,
}
SIZES = {
    # the K-shot draw needs only 16 images per class; the test set is split into 1000 base + 1000 novel images
    "full": {"data.world.train": 500, "data.world.test": 2000},
    "quick": {"data.world.train": 500, "data.world.test": 1000},
    "ci": {
        "data.world.train": 100,
        "data.world.test": 60,
        "data.coop.shots": 4,
        "optim.steps": 3,
        "optim.batch_size": 8,
        "optim.warmup_steps": 1,
    },
}
PAIR_LOSS = {"loss": "mpm_nce", "margin": 0.1, "label_smoothing": 0.0}
RADAPTER = {
    "method.name": "radapter",
    "optim.lr": 5e-4,
    **{f"method.radapter.{k}": v for k, v in PAIR_LOSS.items()},
    "method.radapter.drop_prob": 0.2,
    "method.radapter.ema_momentum": 0.9,
    "eval.alpha": 0.5,
    "eval.alphas": [0.5],
}
RUNS: dict[str, tuple[dict | None, str | None]] = {
    "zeroshot": ({"method.name": "zeroshot"}, None),
    "ft": ({"method.name": "ft", "optim.lr": 1e-4, "optim.weight_decay": 0.1, "eval.alphas": [1.0]}, None),
    # WiSE-FT of the "ft" run of the same seed (nothing is trained)
    "wiseft": ({"method.name": "wiseft", "eval.alpha": 0.5, "eval.alphas": [0.5]}, None),
    "coop": ({"method.name": "coop", "optim.lr": 2e-3, "method.coop.init": "a photo of a"}, None),
    "lora": (
        {"method.name": "lora", "optim.lr": 5e-4, "method.lora.r": 8, "method.lora.lora_alpha": 16.0}
        | {f"method.lora.{k}": v for k, v in PAIR_LOSS.items()},
        None,
    ),
    "radapter": (RADAPTER, None),
}
QUICK = ["zeroshot", "ft", "radapter"]


def harmonic(base: float, novel: float) -> float:
    return 0.0 if base + novel <= 0 else 2 * base * novel / (base + novel)


def story_checks(doc: dict, model_params: int) -> list[dict]:
    """The base-to-novel targets, each with its measured value (``id`` is base top-1, ``ood_avg`` novel top-1).

    Only the methods present in ``doc`` are checked (``--quick`` runs fewer). Returns
    ``[{"target": str, "value": str, "pass": bool}, ...]``.
    """
    m = doc["methods"]
    checks: list[dict] = []

    def add(target: str, value: str, ok: bool) -> None:
        checks.append({"target": target, "value": value, "pass": bool(ok)})

    zs, ra, ft = m.get("zeroshot"), m.get("radapter"), m.get("ft")
    if zs and ra:
        d_novel, d_base = ra["ood_avg"] - zs["ood_avg"], ra["id"] - zs["id"]
        add("R-Adapter (α = 0.5): novel ≥ zero-shot − 2", f"{d_novel:+.1f}", d_novel >= -2)
        add("R-Adapter (α = 0.5): base ≥ zero-shot + 5", f"{d_base:+.1f}", d_base >= 5)
    if zs and ft:
        d = ft["ood_avg"] - zs["ood_avg"]
        add("ft: novel < zero-shot", f"{d:+.1f}", d < 0)
    if ra:
        hm = {name: harmonic(v["id"], v["ood_avg"]) for name, v in m.items()}
        others = {k: v for k, v in hm.items() if k != "radapter"}
        if others:
            best = max(others, key=others.get)
            gap = hm["radapter"] - others[best]
            add("R-Adapter (α = 0.5): HM ≥ every other row's HM", f"{gap:+.1f} vs {best}", gap >= 0)
    return checks


PART = DemoPart(
    task="base2new",
    title="radapter demo: base-to-novel (offline world)",
    common=COMMON,
    sizes=SIZES,
    runs=RUNS,
    copies={},
    quick=QUICK,
    checks=story_checks,
    point_alpha=0.5,
    id_shift_set="",  # HM:top1 is a derived column, not an ID-shift set
    wiseft_of={"wiseft": "ft"},
)
