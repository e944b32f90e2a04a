"""Training memory and step time of R-Adapter against full fine-tuning (FLYP) and LoRA, with and without
activation checkpointing, and R-Adapter with its frozen base weights held in bf16 (issue 13).

Every variant is a ``train_step`` worker — the library's method built as ``radapter train`` builds it
(``workload.py``), in its own subprocess — with the config keys a user would set:

====================================  =====================================================================
variant                               settings
====================================  =====================================================================
``full_ft`` / ``full_ft+ckpt``        ``method.name: flyp`` (every weight of both towers), fp32
``radapter`` / ``radapter+ckpt``      ``method.name: radapter`` (full rank, the paper's defaults), fp32
``lora`` / ``lora+ckpt``              ``method.name: lora`` (peft r = 8 on the handler's targets), fp32
``radapter+ckpt+bf16``                ``optim.precision: bf16`` (autocast; every weight stored fp32)
``radapter+ckpt+bf16_frozen``         ``optim.precision: bf16`` + ``optim.frozen_dtype: bf16``
====================================  =====================================================================

``+ckpt`` = ``optim.grad_checkpointing: true`` (``radapter.backbones.set_grad_checkpointing``: every
transformer block of both towers is recomputed in the backward pass).

Per configuration (``MODEL@BATCH``, e.g. ``ViT-L-14@8``) the variants alternate over ``--rounds`` rounds.
Memory (``common.TensorMemory``, see the README): the most live tensor bytes during one steady-state step, what
is live at its start, what the forward leaves for the backward, and the worker's peak RSS. Time: the median
step, and ``× FT time`` = the median over rounds of the same-round ratio to ``full_ft``. Targets: R-Adapter with
checkpointing ≤ 0.5× full fine-tuning's peak at ≤ 1.0× its step time; R-Adapter without it ≤ 0.80× the time.

    python benchmarks/memory.py --configs ViT-B-16@8 ViT-B-16@32 --json out/memory_b16.json
    python benchmarks/memory.py --configs ViT-L-14@8 --steps 0 --mem-limit-gb 14 --json out/memory_l14.json
    python benchmarks/memory.py --smoke
"""

from __future__ import annotations

import argparse
import copy
import os
import resource
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common as C  # noqa: E402
import train_step  # noqa: E402

#: variant -> (benchmark method, grad checkpointing, autocast, frozen dtype)
VARIANTS: dict[str, tuple[str, bool, str | None, str]] = {
    "full_ft": ("full_ft", False, None, "fp32"),
    "full_ft+ckpt": ("full_ft", True, None, "fp32"),
    "radapter": ("radapter", False, None, "fp32"),
    "radapter+ckpt": ("radapter", True, None, "fp32"),
    "lora": ("lora", False, None, "fp32"),
    "lora+ckpt": ("lora", True, None, "fp32"),
    "radapter+ckpt+bf16": ("radapter", True, "bf16", "fp32"),
    "radapter+ckpt+bf16_frozen": ("radapter", True, "bf16", "bf16"),
}
DEFAULT_CONFIGS = ("ViT-B-16@8", "ViT-B-16@32", "ViT-L-14@8", "ViT-L-14@32")
PASS_THROUGH = ("steps", "warmup", "device", "threads", "model", "batch", "mem_limit_gb")
TARGET_MEMORY, TARGET_CKPT_TIME, TARGET_TIME = 0.5, 1.0, 0.80
FIELDS = (
    "step_s",
    "tensor_peak_mb",
    "tensor_persistent_mb",
    "activations_mb",
    "frozen_fp32_copy_mb",
    "peak_rss_mb",
    "trainable_params",
)


def parse_config(text: str) -> tuple[str, int]:
    """``"ViT-L-14@8"`` -> ``("ViT-L-14", 8)``."""
    model, sep, batch = text.rpartition("@")
    if not sep or not model or not batch.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: expected MODEL@BATCH, e.g. ViT-B-16@8")
    return model, int(batch)


def limit_memory(gb: float | None) -> None:
    """Lets this process allocate at most ``gb`` GiB beyond what it holds now (``RLIMIT_DATA``): on a shared
    machine a variant that does not fit fails alone with torch's allocation error instead of the kernel's OOM
    killer picking a process."""
    if not gb:
        return
    with open("/proc/self/status", encoding="ascii") as f:
        data_kb = next(int(line.split()[1]) for line in f if line.startswith("VmData:"))
    limit = data_kb * 1024 + int(gb * 2**30)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, resource.getrlimit(resource.RLIMIT_DATA)[1]))


def worker(args) -> dict:
    if not args.inprocess:  # never limit the calling process (tests, --inprocess)
        limit_memory(args.mem_limit_gb)
    method, ckpt, amp, frozen = VARIANTS[args.worker]
    ns = copy.copy(args)
    ns.worker, ns.grad_checkpointing, ns.amp, ns.frozen_dtype = method, ckpt, amp, frozen
    res = train_step.worker(ns)
    res["variant"] = args.worker
    return res


def run_one(args, variant: str) -> dict:
    """One worker; a failure (e.g. over ``--mem-limit-gb``) is recorded, not raised."""
    try:
        return C.run_variant("memory.py", worker, args, variant, PASS_THROUGH)
    except (RuntimeError, MemoryError) as e:
        lines = [ln for ln in str(e).splitlines() if ln.strip()]
        reason = next((ln for ln in reversed(lines) if "Error" in ln or "memory" in ln), lines[-1] if lines else "")
        return {"variant": variant, "error": reason.strip()[-300:]}


def summarize(runs: dict[str, list[dict]], batch: int) -> dict:
    """Per variant: medians of the measurements and the ratios to ``full_ft`` (time: same-round ratios)."""
    ok = {v: [r for r in rs if "error" not in r] for v, rs in runs.items()}
    ref = ok.get("full_ft") or []
    out: dict = {}
    for v, rs in runs.items():
        good = ok[v]
        row: dict = dict.fromkeys(FIELDS)
        row.update({"x_ft_time": None, "x_ft_tensor_peak": None, "x_ft_rss_net": None, "error": None})
        if not good:
            row["error"] = rs[0].get("error") if rs else "not run"
            out[v] = row
            continue
        row["step_s"] = C.median([t for r in good for t in r["step_times"]])
        for key, src in (
            ("tensor_peak_mb", "tensor_peak_mb"),
            ("tensor_persistent_mb", "tensor_persistent_mb"),
            ("activations_mb", "saved_activations_mb"),
            ("frozen_fp32_copy_mb", "frozen_fp32_copy_mb"),
            ("peak_rss_mb", "peak_rss_mb"),
        ):
            row[key] = C.median([r[src] for r in good])
        row["trainable_params"] = int(good[0]["trainable_params"])
        if ref:
            pairs = [(a, b) for a, b in zip(rs, runs["full_ft"]) if "error" not in a and "error" not in b]
            if pairs:
                row["x_ft_time"] = C.median([C.median(a["step_times"]) / C.median(b["step_times"]) for a, b in pairs])
            row["x_ft_tensor_peak"] = row["tensor_peak_mb"] / C.median([r["tensor_peak_mb"] for r in ref])
            net = lambda rr: C.median([r["peak_rss_mb"] - r["rss_import_mb"] for r in rr])  # noqa: E731
            row["x_ft_rss_net"] = net(good) / net(ref)
        out[v] = row
    return out


def targets(variants: dict) -> dict:
    """The issue's targets for one configuration (None where a variant it needs did not run)."""
    ck, ra = variants.get("radapter+ckpt", {}), variants.get("radapter", {})
    mem, ck_time, time = ck.get("x_ft_tensor_peak"), ck.get("x_ft_time"), ra.get("x_ft_time")
    return {
        "ckpt_memory_ratio": mem,
        "ckpt_time_ratio": ck_time,
        "ckpt_met": None if None in (mem, ck_time) else bool(mem <= TARGET_MEMORY and ck_time <= TARGET_CKPT_TIME),
        "time_ratio": time,
        "time_met": None if time is None else bool(time <= TARGET_TIME),
    }


def run(args) -> dict:
    out: dict = {"configs": {}}
    details: dict = {}
    for text in args.configs:
        model, batch = parse_config(text)
        names = [v for v in args.variants if f"{text}:{v}" not in args.skip]
        runs: dict[str, list[dict]] = {v: [] for v in args.variants}
        for rnd, variant in C.alternated(names, args.rounds):
            ns = copy.copy(args)
            ns.model, ns.batch = model, batch
            res = run_one(ns, variant)
            runs[variant].append(res)
            if "error" in res:
                print(f"  {text} round {rnd + 1}/{args.rounds} {variant}: FAILED ({res['error']})", flush=True)
            else:
                print(
                    f"  {text} round {rnd + 1}/{args.rounds} {variant:26s} steps "
                    f"{[f'{t:.2f}' for t in res['step_times']]} s, tensors {res['tensor_peak_mb']:.0f} MB, "
                    f"peak RSS {res['peak_rss_mb']:.0f} MB",
                    flush=True,
                )
        for v in args.variants:
            if not runs[v]:
                runs[v].append({"variant": v, "error": "skipped (--skip)"})
        variants = summarize(runs, batch)
        out["configs"][text] = {"model": model, "batch": batch, "variants": variants, "targets": targets(variants)}
        details[text] = runs
    out["_details"] = details
    return out


def report(out: dict, args) -> str:
    head = ["variant", "step s", "× FT time", "tensor peak MB", "× FT", "persistent MB", "activations MB"]
    head += ["fp32 copy MB", "peak RSS MB", "× FT RSS net", "trainable"]
    lines = [
        f"memory: open_clip models (random init), {args.device}, {args.rounds} rounds × ({args.warmup} warm-up + 1 "
        f"profiled + {args.steps} timed) steps per variant"
        + (" (--steps 0: the profiled step is timed)" if not args.steps else ""),
        C.environment(args.device, args.threads),
    ]
    for text, conf in out["configs"].items():
        rows = []
        for v, r in conf["variants"].items():
            if r["error"]:
                rows.append([v, *([None] * (len(head) - 2)), r["error"][:60]])
                continue
            rows.append(
                [
                    v,
                    r["step_s"],
                    r["x_ft_time"],
                    r["tensor_peak_mb"],
                    r["x_ft_tensor_peak"],
                    r["tensor_persistent_mb"],
                    r["activations_mb"],
                    r["frozen_fp32_copy_mb"],
                    r["peak_rss_mb"],
                    r["x_ft_rss_net"],
                    r["trainable_params"],
                ]
            )
        t = conf["targets"]
        fmt = lambda x: "n/a" if x is None else f"{x:.3f}"  # noqa: E731
        lines += [
            "",
            f"{text} ({'tiny smoke model' if args.smoke else conf['model']}, batch {conf['batch']})",
            C.table(rows, head),
            f"targets: radapter+ckpt / full_ft tensor peak {fmt(t['ckpt_memory_ratio'])} (≤ {TARGET_MEMORY}), "
            f"time {fmt(t['ckpt_time_ratio'])} (≤ {TARGET_CKPT_TIME}): {t['ckpt_met']}; "
            f"radapter / full_ft time {fmt(t['time_ratio'])} (≤ {TARGET_TIME}): {t['time_met']}",
        ]
    lines += [
        "",
        "tensor peak: most live tensor bytes during one steady-state step (c10 allocator, common.TensorMemory);",
        "persistent: live at the step's start; activations: what the forward leaves for the backward.",
        "fp32 copy: optim.frozen_dtype bf16 keeps the frozen weights' fp32 originals in host memory (part of the",
        "CPU figures; on a GPU they are not in its memory: tensor peak − fp32 copy is what the GPU would hold).",
        "× FT: ratio to full_ft of the same configuration (time: median of same-round ratios).",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    C.add_common_args(p, steps=1, warmup=1, rounds=1)
    p.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS), help="MODEL@BATCH, e.g. ViT-L-14@8")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--skip", nargs="*", default=[], help="MODEL@BATCH:VARIANT entries not to run (reported)")
    p.add_argument("--model", default=None, help=argparse.SUPPRESS)  # set per configuration for the workers
    p.add_argument(
        "--mem-limit-gb",
        type=float,
        default=None,
        help="each worker may allocate at most this many GiB beyond its imports (RLIMIT_DATA); over it, the "
        "variant is reported as failed",
    )
    args = C.parse_or_run_worker(p, argv, worker)
    if args is None:
        return {}
    for text in args.configs:
        parse_config(text)
    if args.smoke:
        args.configs = [f"tiny@{args.batch}"]
    out = run(args)
    return C.finish(out, args, report(out, args))


if __name__ == "__main__":
    main()
