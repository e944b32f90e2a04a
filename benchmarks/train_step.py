"""Training step cost of R-Adapter against full fine-tuning (FLYP) and peft LoRA, on open_clip ViT-B/16.

Each method runs in its own subprocess (so each has its own peak RSS), the runs alternate between methods
over ``--rounds`` rounds (so slow drifts of the machine's load hit every method alike), and the reported
step time is the median of every timed step of every round. GFLOP/s come from the analytic count in
``common.train_step_flops``; MFU divides them by the best GEMM rate measured inside each worker.

    python benchmarks/train_step.py --json out.json            # ViT-B/16, batch 8, CPU
    python benchmarks/train_step.py --smoke                    # tiny model, seconds
    python benchmarks/train_step.py --device cuda --amp bf16 --batch 64 --peak-gflops spec
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common as C  # noqa: E402
import torch  # noqa: E402

PASS_THROUGH = ("batch", "steps", "warmup", "device", "amp", "threads")


def worker(args) -> dict:
    C.setup_threads(args)
    C.import_libraries(args.worker)
    rss_import = C.rss_mb()
    cfg = C.model_config(args.smoke)
    model = C.apply_method(C.build_model(args.smoke, args.device), args.worker)
    rss_model = C.rss_mb()
    step = C.TrainStep(model, args.worker, args.device, args.amp)
    images, tokens, labels = C.make_batch(cfg, args.batch, args.device)
    saved_mb = None
    for i in range(args.warmup):
        if i == 0:  # the first warm-up step also measures what autograd keeps for backward
            with C.SavedActivations(model) as saved:
                step(images, tokens, labels)
            saved_mb = saved.mb
        else:
            step(images, tokens, labels)
    tw = C.towers(cfg)["image"]
    peak_dtype = {None: torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.amp]
    if args.device.startswith("cuda"):  # a GPU needs a bigger GEMM than one MLP layer to reach its peak
        peak = C.matmul_peak_gflops(8192, 8192, 8192, peak_dtype, args.device, reps=20)
    else:
        peak = C.matmul_peak_gflops(args.batch * tw.tokens, tw.d, tw.mlp, peak_dtype, args.device)
    times = [C.timed(lambda: step(images, tokens, labels), args.device) for _ in range(args.steps)]
    gpu_peak = torch.cuda.max_memory_allocated() / 2**20 if args.device.startswith("cuda") else None
    return {
        "method": args.worker,
        "step_times": times,
        "peak_rss_mb": C.peak_rss_mb(),
        "rss_import_mb": rss_import,
        "rss_model_mb": rss_model,
        "saved_activations_mb": saved_mb,
        "gpu_peak_mb": gpu_peak,
        "trainable_params": C.trainable_params(model),
        "matmul_peak_gflops": peak,
    }


def run(args) -> dict:
    """Runs the alternated workers and returns the issue's schema (plus ``_details`` for the table)."""
    cfg = C.model_config(args.smoke)
    runs: dict[str, list[dict]] = {m: [] for m in args.methods}
    for rnd, method in C.alternated(args.methods, args.rounds):
        res = C.run_variant("train_step.py", worker, args, method, PASS_THROUGH)
        runs[method].append(res)
        print(
            f"  round {rnd + 1}/{args.rounds} {method:13s} steps {[f'{t:.2f}' for t in res['step_times']]} s, "
            f"peak RSS {res['peak_rss_mb']:.0f} MB",
            flush=True,
        )
    peaks = [r["matmul_peak_gflops"] for rs in runs.values() for r in rs]
    peak = C.median(peaks)
    if args.peak_gflops == "spec":
        import torch

        spec = C.spec_bf16_peak_gflops(torch.cuda.get_device_name()) if torch.cuda.is_available() else None
        if spec is None:
            print("  --peak-gflops spec: card not in common.GPU_BF16_PEAK_GFLOPS; using the measured GEMM peak")
        peak = spec or peak
    elif args.peak_gflops:
        peak = float(args.peak_gflops)
    out: dict = {"matmul_peak_gflops": float(peak), "methods": {}}
    for method, rs in runs.items():
        step_s = C.median([t for r in rs for t in r["step_times"]])
        gflops = C.train_step_flops(cfg, args.batch, method) / step_s / 1e9
        out["methods"][method] = {
            "step_s": step_s,
            "images_per_s": args.batch / step_s,
            "peak_rss_mb": C.median([r["peak_rss_mb"] for r in rs]),
            "trainable_params": int(rs[0]["trainable_params"]),
            "gflops": gflops,
            "mfu": gflops / peak,
        }
    out["_details"] = {"runs": runs, "measured_peaks": peaks}
    return out


def paired_ratio(runs: dict, name: str, ref: str) -> float:
    """Median over rounds of (median step of ``name`` / median step of ``ref``) within the same round: load
    drifts between rounds cancel."""
    per_round = [C.median(a["step_times"]) / C.median(b["step_times"]) for a, b in zip(runs[name], runs[ref])]
    return C.median(per_round)


def report(out: dict, args) -> str:
    ms = out["methods"]
    runs = out["_details"]["runs"]
    cfg = C.model_config(args.smoke)
    cuda = args.device.startswith("cuda")

    def med(name, key):
        vals = [r[key] for r in runs[name] if r.get(key) is not None]
        return C.median(vals) if vals else None

    def net(name):  # peak RSS above the interpreter and its imports (torch alone is ~600 MB of RSS)
        return ms[name]["peak_rss_mb"] - med(name, "rss_import_mb")

    ref = "full_ft" if "full_ft" in ms else None
    rows = []
    for name, m in ms.items():
        rows.append(
            [
                name,
                m["step_s"],
                m["images_per_s"],
                paired_ratio(runs, name, ref) if ref else None,
                C.train_step_flops(cfg, args.batch, name) / C.train_step_flops(cfg, args.batch, "full_ft"),
                m["peak_rss_mb"],
                m["peak_rss_mb"] / ms[ref]["peak_rss_mb"] if ref else None,
                net(name) / net(ref) if ref else None,
                med(name, "rss_import_mb"),
                med(name, "rss_model_mb"),
                med(name, "saved_activations_mb"),
                m["trainable_params"],
                m["gflops"],
                m["mfu"],
            ]
            + ([med(name, "gpu_peak_mb")] if cuda else [])
        )
    head = [
        "method",
        "step s",
        "img/s",
        "× FT time",
        "× FT FLOPs",
        "peak RSS MB",
        "× FT mem",
        "× FT mem net",
        "RSS imports MB",
        "RSS +model MB",
        "activations MB",
        "trainable",
        "GFLOP/s",
        "MFU",
    ]
    head += ["GPU peak MB"] if cuda else []
    measured = ", ".join(f"{p:.0f}" for p in out["_details"]["measured_peaks"])
    given = f"given: {args.peak_gflops}; " if args.peak_gflops else ""
    lines = [
        f"train_step: {'tiny smoke model' if args.smoke else 'open_clip ViT-B/16'}, batch {args.batch}, "
        f"{args.device}{' ' + args.amp if args.amp else ' fp32'}, {args.rounds} rounds × ({args.warmup} warm-up + "
        f"{args.steps} timed) steps per method",
        C.environment(args.device, args.threads),
        C.table(rows, head),
        "× FT time: median over rounds of the same-round ratio. × FT FLOPs: analytic (see README).",
        "× FT mem net: peak RSS minus the RSS after imports. RSS +model: after building the model (and adapters).",
        "activations: distinct tensors autograd saved for backward in one step (parameters excluded).",
        f"matmul peak {out['matmul_peak_gflops']:.1f} GFLOP/s ({given}measured GEMM bests per worker: {measured})",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    C.add_common_args(p, steps=1, warmup=1, rounds=3)
    p.add_argument("--methods", nargs="+", default=list(C.METHODS), choices=list(C.METHODS))
    p.add_argument(
        "--peak-gflops",
        default=None,
        help="MFU denominator instead of the measured GEMM peak: a number (GFLOP/s) or 'spec' (the "
        "card's spec-sheet dense bf16 peak, see common.GPU_BF16_PEAK_GFLOPS)",
    )
    args = C.parse_or_run_worker(p, argv, worker)
    if args is None:
        return {}
    out = run(args)
    return C.finish(out, args, report(out, args))


if __name__ == "__main__":
    main()
