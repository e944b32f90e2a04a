"""Training step cost of R-Adapter against full fine-tuning (FLYP) and LoRA, on open_clip ViT-B/16.

Every method is the library's (``workload.py``: the method class from ``method.name``, its ``param_groups``,
``loss`` on a task ``Batch``, ``after_step``, and the trainer's AdamW, clipping and schedule). Each method runs in
its own subprocess (so each has its own peak RSS and allocator), the runs alternate between methods over
``--rounds`` rounds (so slow drifts of the machine's load hit every method alike), and the reported step time
is the median of every timed step of every round. Memory: the worker's peak RSS, and the live tensor bytes of
one steady-state step (``common.TensorMemory``). GFLOP/s come from the analytic count in ``flops.py``; MFU
divides them by the best GEMM rate measured inside each worker.

    python benchmarks/train_step.py --json out.json            # ViT-B/16, batch 8, CPU
    python benchmarks/train_step.py --smoke                    # tiny model, seconds
    python benchmarks/train_step.py --model ViT-L-14 --grad-checkpointing --methods radapter full_ft
    python benchmarks/train_step.py --device cuda --amp bf16 --batch 64 --peak-gflops spec
"""

from __future__ import annotations

import argparse
import gc
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common as C  # noqa: E402
import flops as F  # noqa: E402
import torch  # noqa: E402
import workload as W  # noqa: E402

PASS_THROUGH = ("batch", "steps", "warmup", "device", "amp", "threads", "model", "grad_checkpointing", "frozen_dtype")


def worker_config(args):
    """The ``RunConfig`` of this worker's method (``args.worker``) and settings."""
    return W.run_config(
        args.worker,
        model=args.model,
        smoke=args.smoke,
        batch=args.batch,
        device=args.device,
        amp=args.amp,
        grad_checkpointing=args.grad_checkpointing,
        frozen_dtype=args.frozen_dtype,
    )


def worker(args) -> dict:
    """Builds the method's workload, runs ``warmup`` steps and one steady-state step under
    :class:`common.TensorMemory`, measures the GEMM peak, then times ``steps`` steps. With ``--steps 0`` the
    steady-state step (profiled) is the one timed."""
    C.setup_threads(args)
    rss_import = C.rss_mb()  # workload.py imported torch, open_clip, peft and radapter
    cfg = worker_config(args)
    with C.TensorMemory(args.device) as mem:
        wl = W.build(cfg)
        rss_model = C.rss_mb()
        batch = wl.task.batch(0)
        for _ in range(args.warmup):
            wl.step(batch)
        mem.steady()
        wl.on_phase = mem.on_phase
        profiled_s = C.timed(lambda: wl.step(batch), args.device)
        wl.on_phase = None
    tensors = mem.step_summary()
    del mem
    gc.collect()
    # peak RSS of the unprofiled steps below: the profiler's buffers (~0.4 GB at ViT-B/16) are not the method's
    rss_worker = C.peak_rss_mb()
    rss_reset = bool(args.steps) and not getattr(args, "inprocess", False) and C.reset_peak_rss()
    tw = F.towers(W.model_config(args.model, args.smoke))["image"]
    peak_dtype = {None: torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.amp]
    if args.device.startswith("cuda"):  # a GPU needs a bigger GEMM than one MLP layer to reach its peak
        peak = C.matmul_peak_gflops(8192, 8192, 8192, peak_dtype, args.device, reps=20)
    else:
        peak = C.matmul_peak_gflops(args.batch * tw.tokens, tw.d, tw.mlp, peak_dtype, args.device)
    times = [C.timed(lambda: wl.step(batch), args.device) for _ in range(args.steps)] or [profiled_s]
    gpu_peak = torch.cuda.max_memory_allocated() / 2**20 if args.device.startswith("cuda") else None
    # optim.frozen_dtype bf16: hold_frozen_weights keeps an fp32 copy of every weight it casts, in host memory
    held = [p for p in wl.model.parameters() if not p.requires_grad and p.dtype == torch.bfloat16]
    host_copy = sum(p.numel() * 4 for p in held) / 2**20 if cfg.optim.frozen_dtype == "bf16" else 0.0
    return {
        "method": args.worker,
        "step_times": times,
        "timed_profiled_step": not args.steps,
        "profiled_step_s": profiled_s,
        "peak_rss_mb": C.peak_rss_mb(),
        "peak_rss_scope": "timed steps" if rss_reset else "whole worker (profiler included)",
        "peak_rss_worker_mb": rss_worker,
        "rss_import_mb": rss_import,
        "rss_model_mb": rss_model,
        "tensor_peak_mb": tensors["peak_mb"],
        "tensor_persistent_mb": tensors["persistent_mb"],
        "saved_activations_mb": tensors["activations_mb"],
        "frozen_fp32_copy_mb": host_copy,
        "gpu_peak_mb": gpu_peak,
        "trainable_params": wl.trainable_params(),
        "gflop": F.train_step_flops(
            W.model_config(args.model, args.smoke), args.batch, F.step_shape(cfg, len(wl.task.classnames))
        )
        / 1e9,
        "matmul_peak_gflops": peak,
    }


def run(args) -> dict:
    """Runs the alternated workers and returns the issue's schema (plus ``_details`` for the table)."""
    runs: dict[str, list[dict]] = {m: [] for m in args.methods}
    for rnd, method in C.alternated(args.methods, args.rounds):
        res = C.run_variant("train_step.py", worker, args, method, PASS_THROUGH)
        runs[method].append(res)
        print(
            f"  round {rnd + 1}/{args.rounds} {method:13s} steps {[f'{t:.2f}' for t in res['step_times']]} s, "
            f"peak RSS {res['peak_rss_mb']:.0f} MB, tensors {res['tensor_peak_mb']:.0f} MB",
            flush=True,
        )
    peaks = [r["matmul_peak_gflops"] for rs in runs.values() for r in rs]
    peak = C.median(peaks)
    if args.peak_gflops == "spec":
        spec = C.spec_bf16_peak_gflops(torch.cuda.get_device_name()) if torch.cuda.is_available() else None
        if spec is None:
            print("  --peak-gflops spec: card not in common.GPU_BF16_PEAK_GFLOPS; using the measured GEMM peak")
        peak = spec or peak
    elif args.peak_gflops:
        peak = float(args.peak_gflops)
    out: dict = {"matmul_peak_gflops": float(peak), "methods": {}}
    for method, rs in runs.items():
        step_s = C.median([t for r in rs for t in r["step_times"]])
        gflops = rs[0]["gflop"] / step_s
        out["methods"][method] = {
            "step_s": step_s,
            "images_per_s": args.batch / step_s,
            "peak_rss_mb": C.median([r["peak_rss_mb"] for r in rs]),
            "tensor_peak_mb": C.median([r["tensor_peak_mb"] for r in rs]),
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


def describe(args) -> str:
    """``ViT-B-16, batch 8, cpu fp32, checkpointing`` — the settings every table states."""
    model = "tiny smoke model" if args.smoke else f"open_clip {args.model} (random init)"
    extra = (", activation checkpointing" if args.grad_checkpointing else "") + (
        ", frozen weights bf16" if args.frozen_dtype == "bf16" else ""
    )
    return f"{model}, batch {args.batch}, {args.device} {args.amp or 'fp32'}{extra}"


def report(out: dict, args) -> str:
    ms = out["methods"]
    runs = out["_details"]["runs"]
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
                runs[name][0]["gflop"] / runs[ref][0]["gflop"] if ref else None,
                m["tensor_peak_mb"],
                m["tensor_peak_mb"] / ms[ref]["tensor_peak_mb"] if ref else None,
                med(name, "tensor_persistent_mb"),
                med(name, "saved_activations_mb"),
                m["peak_rss_mb"],
                net(name) / net(ref) if ref else None,
                med(name, "rss_model_mb"),
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
        "tensor peak MB",
        "× FT",
        "persistent MB",
        "activations MB",
        "peak RSS MB",
        "× FT RSS net",
        "RSS +model MB",
        "trainable",
        "GFLOP/s",
        "MFU",
    ]
    head += ["GPU peak MB"] if cuda else []
    measured = ", ".join(f"{p:.0f}" for p in out["_details"]["measured_peaks"])
    given = f"given: {args.peak_gflops}; " if args.peak_gflops else ""
    imports = med(next(iter(ms)), "rss_import_mb")
    lines = [
        f"train_step: {describe(args)}, {args.rounds} rounds × ({args.warmup} warm-up + 1 profiled + "
        f"{args.steps} timed) steps per method",
        C.environment(args.device, args.threads),
        C.table(rows, head),
        "× FT time: median over rounds of the same-round ratio. × FT FLOPs: analytic (flops.py).",
        "tensor peak: most live tensor bytes during one steady-state step (c10 allocator, common.TensorMemory);",
        "  persistent: live at its start (weights, optimizer state, EMA, batch); activations: left by the forward",
        f"  for the backward. × FT RSS net: peak RSS minus the RSS after imports ({imports:.0f} MB).",
        f"matmul peak {out['matmul_peak_gflops']:.1f} GFLOP/s ({given}measured GEMM bests per worker: {measured})",
    ]
    if any(r.get("timed_profiled_step") for rs in runs.values() for r in rs):
        lines.append("--steps 0: the step times are those of the profiled step")
    return "\n".join(lines)


def add_workload_args(p) -> None:
    """The workload settings every training benchmark shares (config keys of the run a user would write)."""
    p.add_argument("--model", default="ViT-B-16", help="open_clip model name, random init (default ViT-B-16)")
    p.add_argument(
        "--grad-checkpointing", action="store_true", help="optim.grad_checkpointing: recompute block activations"
    )
    p.add_argument(
        "--frozen-dtype", choices=["fp32", "bf16"], default="fp32", help="optim.frozen_dtype (bf16 needs --amp)"
    )


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    C.add_common_args(p, steps=1, warmup=1, rounds=3)
    add_workload_args(p)
    p.add_argument("--methods", nargs="+", default=list(W.DEFAULT_METHODS), choices=list(W.METHODS))
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
