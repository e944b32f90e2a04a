"""Cost of re-parameterisation: one merge of ViT-B/16 R-Adapters at one α, and an 11-point α sweep
(α = 0, 0.1, …, 1) split into merging, building the zero-shot head and the image pass.

A sweep evaluates a merged model per α: merge, build the head from the merged text tower (``classes ×
templates`` prompts), classify ``images`` images. The default sizes keep ImageNet's proportion of texts to
images (1000 classes × 80 templates = 80k prompts for 50k val images: 1.6 prompts per image) at 16 images,
so the split says where a real sweep's time goes. The adapters are the library's R-Adapter method's
(``workload.py``); one merge is ``RAdapterMethod.merged(0.5)`` (what a run exports) and the sweep is
``RAdapterMethod.variants(alphas)`` (what a run evaluates: ``iter_alpha_merges``, the α-independent products
``s̃F̃W`` computed once and each α one axpy into a single reused copy); ``--naive`` calls ``merge_r_adapter``
per α instead.

    python benchmarks/merge.py --json out.json
    python benchmarks/merge.py --smoke
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common as C  # noqa: E402
import torch  # noqa: E402
import workload as W  # noqa: E402
from inference import randomize_adapters  # noqa: E402


def merge_flops(model: torch.nn.Module) -> float:
    """FLOPs of one full merge: per adapted linear ``W' = W + (α s̃ F̃) W``: d×d @ d×d_in (+ the low-rank
    product U·D, and the bias)."""
    import radapter

    total = 0.0
    adapters = dict(radapter.iter_adapters(model))
    for site in model.radapter_sites:
        w = model.get_submodule(site.linear_path).weight
        a = adapters[site.name]
        total += 2.0 * w.shape[0] * w.shape[0] * (w.shape[1] + 1)
        if a.low_rank:
            total += 2.0 * a.dim * a.dim * a.rank
    return total


def sweep_iterator(method, alphas, naive: bool):
    """Yields ``(alpha, merged_model)``: the method's evaluation variants, or one ``merge_r_adapter`` per α."""
    import radapter

    if not naive:
        for variant in method.variants(alphas):
            yield variant.alpha, variant.scorer.model
        return
    for a in alphas:
        yield a, radapter.merge_r_adapter(method.model, alpha=a)


def run(args) -> dict:
    import radapter

    C.setup_threads(args)
    extra = {"eval.alpha": 0.5, **({"method.radapter.rank": args.rank} if args.rank is not None else {})}
    wl = W.build(W.run_config("radapter", smoke=args.smoke, device=args.device, extra=extra))
    model, method = wl.model, wl.method
    randomize_adapters(model)
    model.eval()

    # one merge at α = 0.5, repeated; the copy is freed between runs so each run allocates afresh
    merge_times = []
    for i in range(args.warmup + args.rounds):
        gc.collect()
        t = time.perf_counter()
        merged = method.merged(0.5)
        dt = time.perf_counter() - t
        del merged
        if i >= args.warmup:
            merge_times.append(dt)

    # the α sweep
    tok = wl.backbone.tokenizer
    classnames = [f"object {i}" for i in range(args.classes)]
    templates = [t for t in radapter.OPENAI_IMAGENET_TEMPLATES[: args.templates]]
    images = wl.task.images(args.images, seed=3)
    alphas = [round(0.1 * i, 1) for i in range(11)] if not args.smoke else [0.0, 0.5, 1.0]
    split = {"merge": 0.0, "head": 0.0, "images": 0.0}
    gc.collect()
    t_sweep = time.perf_counter()
    it = sweep_iterator(method, alphas, args.naive)
    while True:
        t = time.perf_counter()
        try:
            alpha, merged = next(it)
        except StopIteration:
            break
        split["merge"] += time.perf_counter() - t
        merged.eval()
        t = time.perf_counter()
        with torch.inference_mode():
            head = radapter.build_zero_shot_head(merged, tok, classnames, templates, device=args.device, batch_size=64)
        split["head"] += time.perf_counter() - t
        t = time.perf_counter()
        with torch.inference_mode():
            for start in range(0, args.images, args.batch):
                f = radapter.encode_image(merged, images[start : start + args.batch], normalize=True)
                (f @ head.t()).argmax(dim=1)
        split["images"] += time.perf_counter() - t
        del merged
    sweep_s = time.perf_counter() - t_sweep
    out = {
        "merge_s": C.median(merge_times),
        "sweep_s": sweep_s,
        "sweep_merge_s": split["merge"],
        "sweep_head_s": split["head"],
        "sweep_images_s": split["images"],
    }
    out["_details"] = {"merge_times": merge_times, "merge_gflop": merge_flops(model) / 1e9, "alphas": alphas}
    return out


def report(out: dict, args) -> str:
    d = out["_details"]
    total = out["sweep_s"]
    rows = [
        ["merge (one α)", out["merge_s"], None, d["merge_gflop"] / out["merge_s"]],
        [f"sweep ({len(d['alphas'])} α) total", total, 1.0, None],
        ["  merging", out["sweep_merge_s"], out["sweep_merge_s"] / total, None],
        [
            f"  zero-shot head ({args.classes}×{args.templates} prompts)",
            out["sweep_head_s"],
            out["sweep_head_s"] / total,
            None,
        ],
        [f"  image pass ({args.images} images)", out["sweep_images_s"], out["sweep_images_s"] / total, None],
    ]
    return "\n".join(
        [
            f"merge: {'tiny smoke model' if args.smoke else 'open_clip ViT-B/16'}, R-Adapter "
            f"{'full rank' if args.rank is None else f'rank {args.rank}'} in both towers, {args.device}; "
            f"merge = median of {args.rounds} runs ({', '.join(f'{t:.2f}' for t in d['merge_times'])} s); "
            f"sweep via {'merge_r_adapter per α' if args.naive else 'RAdapterMethod.variants (iter_alpha_merges)'}",
            C.environment(args.device, args.threads),
            C.table(rows, ["what", "seconds", "share of sweep", "GFLOP/s"]),
            f"one merge = {d['merge_gflop']:.1f} GFLOP of matrix products (d×d @ d×d_in per adapted linear)",
        ]
    )


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    C.add_common_args(p, steps=1, warmup=1, rounds=5, batch=8)
    p.add_argument("--rank", type=int, default=None, help="adapter rank (default full rank)")
    p.add_argument("--images", type=int, default=16, help="images classified per α")
    p.add_argument("--classes", type=int, default=8)
    p.add_argument("--templates", type=int, default=3)
    p.add_argument("--naive", action="store_true", help="merge_r_adapter per α instead of the method's variants")
    args = p.parse_args(argv)
    if args.smoke:
        args.rounds, args.warmup, args.images, args.classes, args.templates = 2, 1, 4, 3, 2
        args.threads = args.threads or 1  # see common.smoke_overrides
    out = run(args)
    return C.finish(out, args, report(out, args))


if __name__ == "__main__":
    main()
