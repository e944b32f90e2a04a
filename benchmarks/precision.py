"""fp32 against bf16 autocast, and bf16 autocast with the frozen base weights held in bf16: R-Adapter training
step time on ViT-B/16, and the accuracy of the offline demo's R-Adapter run trained each way.

Step time: the ``train_step`` worker (the library's method, same model, batch, optimizer, loss) for ``--method``
(default R-Adapter full rank) in alternated subprocesses: ``fp32``; ``bf16`` = ``optim.precision: bf16``
(autocast: matmuls and convolutions in bf16; weights, optimizer and EMA in fp32); ``bf16_frozen`` = that plus
``optim.frozen_dtype: bf16`` (``radapter.backbones.hold_frozen_weights``: the frozen weights stored in bf16, the
adapters, EMA and optimizer state fp32). On CUDA (``--device cuda``) the same comparison runs on the GPU.

Accuracy: the demo's R-Adapter recipe (``radapter.cli.demo``: the shipped world CLIP, the world task, 200
steps) trained once per precision with seed 0 through ``radapter.runs.Run``; the ID top-1 at α = 0.5 is
reported. When the demo or its shipped model is missing, the accuracies are ``null`` and the table says why;
the step-time part runs regardless. ``--no-demo`` skips it.

    python benchmarks/precision.py --json out.json
    python benchmarks/precision.py --smoke
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common as C  # noqa: E402
import train_step  # noqa: E402
import workload as W  # noqa: E402

VARIANTS = ("fp32", "bf16", "bf16_frozen")
#: variant -> (optim.precision, optim.frozen_dtype)
SETTINGS = {"fp32": ("fp32", "fp32"), "bf16": ("bf16", "fp32"), "bf16_frozen": ("bf16", "bf16")}
PASS_THROUGH = ("batch", "steps", "warmup", "device", "threads", "method", "demo_size", "demo_model", "model")


def demo_accuracy(variant: str, size: str, model: str | None, device: str) -> tuple[float | None, str]:
    """Trains the demo's R-Adapter recipe as ``variant``; returns (ID top-1 % at α = 0.5, note)."""
    try:
        from radapter.cli.demo import classification as D
        from radapter.config import load_config
        from radapter.runs import Run
    except ImportError as e:
        return None, f"demo not available ({e})"
    world = model or D.WORLD_MODEL
    if not os.path.isfile(os.path.join(world, "open_clip_config.json")):
        return None, f"the demo's world CLIP is missing ({world}); build it with scripts/pretrain_world.py"
    precision, frozen = SETTINGS[variant]
    overrides = {
        **D.COMMON,
        **D.SIZES[size],
        **D.RUNS["radapter"][0],
        "model.name": f"local-dir:{world}",
        "optim.precision": precision,
        "optim.frozen_dtype": frozen,
        "progress": False,
        "seed": 0,
        "device": device,
        "eval.alphas": [0.5],
    }
    with tempfile.TemporaryDirectory(prefix="radapter-precision-") as out:
        rows = Run(load_config(None, {**overrides, "out": out})).run()
    row = next(r for r in rows if r.get("alpha") is not None and abs(r["alpha"] - 0.5) < 1e-9)
    key = "id:top1" if "id:top1" in row else next(k for k in row if k.endswith(":top1"))
    return float(row[key]), f"demo R-Adapter recipe, size {size}, seed 0, {key} at α = 0.5"


def worker(args) -> dict:
    variant = args.worker.split("_", 1)[1]
    if args.worker.startswith("demo_"):
        C.setup_threads(args)
        acc, note = demo_accuracy(variant, args.demo_size, args.demo_model, args.device)
        return {"variant": args.worker, "acc": acc, "note": note}
    precision, args.frozen_dtype = SETTINGS[variant]
    args.amp = None if precision == "fp32" else precision
    args.grad_checkpointing = False
    args.worker = args.method
    res = train_step.worker(args)
    res["variant"] = variant
    return res


def run(args) -> dict:
    runs = {v: [] for v in VARIANTS}
    for rnd, variant in C.alternated(VARIANTS, args.rounds):
        res = C.run_variant("precision.py", worker, args, f"step_{variant}", PASS_THROUGH)
        runs[variant].append(res)
        print(
            f"  round {rnd + 1}/{args.rounds} {variant} steps {[f'{t:.2f}' for t in res['step_times']]} s", flush=True
        )
    demo = {}
    for variant in VARIANTS:
        if args.no_demo:
            demo[variant] = {"acc": None, "note": "skipped (--no-demo)"}
        else:
            demo[variant] = C.run_variant("precision.py", worker, args, f"demo_{variant}", PASS_THROUGH)
            print(f"  demo {variant}: {demo[variant]['acc']} ({demo[variant]['note']})", flush=True)
    out = {f"{v}_step_s": C.median([t for r in runs[v] for t in r["step_times"]]) for v in VARIANTS}
    out.update({f"demo_acc_{v}": demo[v]["acc"] for v in VARIANTS})
    out["_details"] = {"runs": runs, "demo": demo}
    return out


def report(out: dict, args) -> str:
    d = out["_details"]

    def med(v, key):
        return C.median([r[key] for r in d["runs"][v]])

    acc = {v: out[f"demo_acc_{v}"] for v in VARIANTS}
    rows = [
        [
            v,
            out[f"{v}_step_s"],
            out[f"{v}_step_s"] / out["fp32_step_s"],
            med(v, "matmul_peak_gflops"),
            med(v, "tensor_peak_mb"),
            med(v, "tensor_persistent_mb"),
            med(v, "saved_activations_mb"),
            med(v, "peak_rss_mb"),
            acc[v],
        ]
        for v in VARIANTS
    ]

    def diff(v):
        return "n/a" if acc[v] is None or acc["fp32"] is None else f"{acc[v] - acc['fp32']:+.2f} points"

    diffs = ", ".join(f"{v} − fp32: {diff(v)}" for v in VARIANTS[1:])
    model = "tiny smoke model" if args.smoke else f"open_clip {args.model} (random init)"
    return "\n".join(
        [
            f"precision: {model}, {args.method}, batch {args.batch}, {args.device}, {args.rounds} rounds × "
            f"({args.warmup} warm-up + 1 profiled + {args.steps} timed) steps",
            C.environment(args.device, args.threads),
            C.table(
                rows,
                [
                    "variant",
                    "step s",
                    "× fp32",
                    "GEMM peak GFLOP/s",
                    "tensor peak MB",
                    "persistent MB",
                    "activations MB",
                    "peak RSS MB",
                    "demo top-1 %",
                ],
            ),
            "bf16 = optim.precision bf16 (autocast); bf16_frozen = that + optim.frozen_dtype bf16 (the frozen weights",
            "held in bf16; hold_frozen_weights keeps an fp32 copy of them in host memory for merge and export).",
            f"demo accuracy {diffs} ({d['demo']['fp32']['note']})",
        ]
    )


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    C.add_common_args(p, steps=1, warmup=1, rounds=2, batch=8)
    p.add_argument("--method", default="radapter", choices=list(W.METHODS))
    p.add_argument("--model", default="ViT-B-16", help="open_clip model name, random init (default ViT-B-16)")
    p.add_argument("--no-demo", action="store_true", help="skip the demo accuracy (reported as null)")
    p.add_argument(
        "--demo-size", default="full", help="demo size preset (radapter.cli.demo.classification.SIZES): full or ci"
    )
    p.add_argument("--demo-model", default=None, help="world CLIP folder (default: the one the demo ships)")
    args = C.parse_or_run_worker(p, argv, worker)
    if args is None:
        return {}
    if args.smoke and args.demo_size == "full":
        args.demo_size = "ci"
    out = run(args)
    return C.finish(out, args, report(out, args))


if __name__ == "__main__":
    main()
