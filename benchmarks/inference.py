"""Inference cost of R-Adapter: the base model, the merged model (adapters folded into the weights) and the
unmerged adapted model (eval mode: EMA weights, α = 0.5), image and text encoding.

All three come from the library's R-Adapter method (``workload.py``): the base is the loaded backbone before
the method adapts it, the merged model is ``RAdapterMethod.merged(0.5)`` (what ``radapter train`` exports),
the unmerged one the method's adapted model. The three models live in one process and are timed in rotating order, one image batch and one text batch
each per round, so the paired ratio (merged / base in the same round) cancels the machine's load drifts.
The adapters get random non-zero EMA weights first, so the merged weights really differ from the base ones.

    python benchmarks/inference.py --json out.json
    python benchmarks/inference.py --smoke
"""

from __future__ import annotations

import argparse
import copy
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common as C  # noqa: E402
import torch  # noqa: E402
import workload as W  # noqa: E402

VARIANTS = ("base", "merged", "unmerged")


@torch.no_grad()
def randomize_adapters(model: torch.nn.Module, seed: int = 0) -> None:
    """Random EMA (and live) adapter weights of a trained-looking size: s̃ ≈ 0.1, F̃ ~ N(0, 0.02²)."""
    import radapter

    g = torch.Generator().manual_seed(seed)
    for _, adapter in radapter.iter_adapters(model):
        for name in adapter.param_names:
            t = getattr(adapter, f"ema_{name}")
            val = (
                0.1 + 0.01 * torch.randn(t.shape, generator=g)
                if name == "scale"
                else 0.02 * torch.randn(t.shape, generator=g)
            )
            t.copy_(val.to(t))
            getattr(adapter, name).copy_(val.to(t))


def build_variants(smoke: bool, device: str, rank: int | None = None) -> tuple[dict[str, torch.nn.Module], object]:
    """``({"base", "merged", "unmerged"}, workload)``: the backbone as loaded, and R-Adapter's merged and
    unmerged models at α = 0.5 with random non-zero adapter weights."""
    extra = {"method.radapter.rank": rank} if rank is not None else None
    cfg = W.run_config("radapter", smoke=smoke, device=device, extra={**(extra or {}), "eval.alpha": 0.5})
    backbone = W.load_backbone(cfg)
    base = copy.deepcopy(backbone.model).eval()
    wl = W.build(cfg, backbone=backbone)
    randomize_adapters(wl.model)
    merged = wl.method.merged(0.5).eval()
    return {"base": base, "merged": merged, "unmerged": wl.model.eval()}, wl


def run(args) -> dict:
    import radapter

    C.setup_threads(args)
    models, wl = build_variants(args.smoke, args.device, args.rank)
    images = wl.task.images(args.batch, seed=1)
    tokens = wl.backbone.tokenizer(wl.task.captions(args.text_batch))
    tokens = tokens.to(args.device) if hasattr(tokens, "to") else tokens
    amp = {None: None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.amp]

    def encoder(model, which):
        def fn():
            with torch.inference_mode(), torch.autocast(args.device.split(":")[0], dtype=amp, enabled=amp is not None):
                if which == "image":
                    radapter.encode_image(model, images)
                else:
                    radapter.encode_text(model, tokens)

        return fn

    times = {(v, w): [] for v in VARIANTS for w in ("image", "text")}
    schedule = C.alternated(VARIANTS, args.warmup + args.rounds)
    for rnd, variant in schedule:
        for which in ("image", "text"):
            dt = C.timed(encoder(models[variant], which), args.device)
            if rnd >= args.warmup:
                times[(variant, which)].append(dt)
    out = {
        v: {
            "images_per_s": args.batch / C.median(times[(v, "image")]),
            "texts_per_s": args.text_batch / C.median(times[(v, "text")]),
        }
        for v in VARIANTS
    }
    paired = {
        (v, w): C.median([a / b for a, b in zip(times[(v, w)], times[("base", w)])])
        for v in VARIANTS
        for w in ("image", "text")
    }
    out["_details"] = {
        "paired_time_ratio": {f"{v}/{w}": r for (v, w), r in paired.items()},
        "times": {f"{v}/{w}": t for (v, w), t in times.items()},
    }
    return out


def report(out: dict, args) -> str:
    pr = out["_details"]["paired_time_ratio"]
    rows = [[v, out[v]["images_per_s"], out[v]["texts_per_s"], pr[f"{v}/image"], pr[f"{v}/text"]] for v in VARIANTS]
    head = ["model", "images/s", "texts/s", "× base time (img)", "× base time (txt)"]
    return "\n".join(
        [
            f"inference: {'tiny smoke model' if args.smoke else 'open_clip ViT-B/16'}, image batch {args.batch}, "
            f"text batch {args.text_batch}, {args.device} {args.amp or 'fp32'}, {args.rounds} rounds (+{args.warmup} "
            f"warm-up), R-Adapter {'full rank' if args.rank is None else f'rank {args.rank}'}, α = 0.5",
            C.environment(args.device, args.threads),
            C.table(rows, head),
            "× base time: median over rounds of the paired ratio (same round, adjacent runs).",
        ]
    )


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    C.add_common_args(p, steps=1, warmup=1, rounds=10, batch=4)
    p.add_argument("--text-batch", type=int, default=16)
    p.add_argument("--rank", type=int, default=None, help="adapter rank (default full rank)")
    args = p.parse_args(argv)
    if args.smoke:
        args.rounds, args.warmup = 2, 1
        args.threads = args.threads or 1  # see common.smoke_overrides
    out = run(args)
    return C.finish(out, args, report(out, args))


if __name__ == "__main__":
    main()
