"""fp32 against bf16 autocast: R-Adapter training step time on ViT-B/16, and the accuracy of the offline
demo's R-Adapter run trained at each precision.

Step time: the ``train_step`` worker (same model, batch, optimizer, loss) for ``--method`` (default R-Adapter
full rank) in alternated subprocesses, fp32 and bf16 autocast (matmuls and convolutions in bf16, weights,
optimizer and EMA in fp32). On CUDA (``--device cuda``) the same comparison runs on the GPU.

Accuracy: the demo's R-Adapter recipe (``radapter.cli.demo``: the shipped world CLIP, the world task, 200
steps) trained once per precision with seed 0; the ID top-1 at the default α = 0.5 is reported. When the
demo or its shipped model is missing, the accuracies are ``null`` and the table says why; the step-time part
runs regardless. ``--no-demo`` skips it.

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

VARIANTS = ("fp32", "bf16")
PASS_THROUGH = ("batch", "steps", "warmup", "device", "threads", "method", "demo_size", "demo_model")


def demo_accuracy(precision: str, size: str, model: str | None, device: str) -> tuple[float | None, str]:
    """Trains the demo's R-Adapter recipe at ``precision``; returns (ID top-1 % at the default α, note)."""
    try:
        from radapter.cli.demo import classification as D
        from radapter.config import load_config
        from radapter.runs import Run
    except ImportError as e:
        return None, f"demo not available ({e})"
    if hasattr(D, "demo_accuracy"):  # a library entry point, if the demo grows one
        return float(D.demo_accuracy("radapter", precision=precision, size=size)), "radapter.cli.demo.demo_accuracy"
    world = model or getattr(D, "WORLD_MODEL", None)
    if not world or not os.path.isfile(os.path.join(world, "open_clip_config.json")):
        return None, f"the demo's world CLIP is missing ({world}); build it with scripts/pretrain_world.py"
    overrides = {
        **D.COMMON,
        **D.SIZES[size],
        **D.RUNS["radapter"][0],
        "model.name": f"local-dir:{world}",
        "optim.precision": precision,
        "progress": False,
        "seed": 0,
        "device": device,
        "eval.alphas": [0.5],
    }
    with tempfile.TemporaryDirectory(prefix="radapter-precision-") as out:
        try:
            cfg = load_config(None, {**overrides, "out": out})
        except Exception:  # noqa: BLE001 - an older/newer config without "device": retry without it
            overrides.pop("device")
            cfg = load_config(None, {**overrides, "out": out})
        rows = Run(cfg).run()
    row = next((r for r in rows if r.get("alpha") is not None and abs(r["alpha"] - 0.5) < 1e-9), rows[0])
    key = "id:top1" if "id:top1" in row else next(k for k in row if k.endswith(":top1"))
    return float(row[key]), f"demo R-Adapter recipe, size {size}, seed 0, {key} at α = 0.5"


def worker(args) -> dict:
    precision = args.worker.split("_")[-1]
    if args.worker.startswith("demo_"):
        C.setup_threads(args)
        acc, note = demo_accuracy(precision, args.demo_size, args.demo_model, args.device)
        return {"variant": args.worker, "acc": acc, "note": note}
    args.amp = None if precision == "fp32" else precision
    args.worker = args.method
    res = train_step.worker(args)
    res["variant"] = precision
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
    out = {
        "fp32_step_s": C.median([t for r in runs["fp32"] for t in r["step_times"]]),
        "bf16_step_s": C.median([t for r in runs["bf16"] for t in r["step_times"]]),
        "demo_acc_fp32": demo["fp32"]["acc"],
        "demo_acc_bf16": demo["bf16"]["acc"],
    }
    out["_details"] = {"runs": runs, "demo": demo}
    return out


def report(out: dict, args) -> str:
    d = out["_details"]
    peaks = {v: C.median([r["matmul_peak_gflops"] for r in d["runs"][v]]) for v in VARIANTS}
    acc = {v: out[f"demo_acc_{v}"] for v in VARIANTS}
    rows = [[v, out[f"{v}_step_s"], out[f"{v}_step_s"] / out["fp32_step_s"], peaks[v], acc[v]] for v in VARIANTS]
    diff = None if None in acc.values() else acc["bf16"] - acc["fp32"]
    return "\n".join(
        [
            f"precision: {'tiny smoke model' if args.smoke else 'open_clip ViT-B/16'}, {args.method}, batch "
            f"{args.batch}, {args.device}, {args.rounds} rounds × ({args.warmup} warm-up + {args.steps} timed) steps",
            C.environment(args.device, args.threads),
            C.table(rows, ["precision", "step s", "× fp32", "GEMM peak GFLOP/s", "demo top-1 %"]),
            f"demo accuracy difference bf16 − fp32: {'n/a' if diff is None else f'{diff:+.2f} points'} "
            f"({d['demo']['fp32']['note']})",
        ]
    )


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    C.add_common_args(p, steps=1, warmup=1, rounds=2, batch=8)
    p.add_argument("--method", default="radapter", choices=list(C.METHODS))
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
