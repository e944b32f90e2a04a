"""End-to-end training throughput — JPEG decode and augmentation from an on-disk ImageFolder, prompt
tokenisation, R-Adapter step — against the same step on a batch already in memory (model only).

The benchmark writes its own ImageFolder of photo-sized JPEGs (500×375, quality 90) to a temporary folder. Both
variants are what ``radapter train`` builds for ``data.kind: imagefolder``: the library's classification task
(``radapter.data.ImageFolderDataset``, the paper's training transform: RandomResizedCrop 224, scale 0.9–1.0,
bicubic, CLIP normalisation; one template caption per image), the method (``workload.py``) and the trainer's
loader (``StepSampler`` + ``DataLoader`` with ``data.workers`` processes and the task's collate). ``model_only``
collates one batch and steps on it again and again; ``end_to_end`` takes a fresh batch from the loader every
step. The two variants run in alternated subprocesses.

    python benchmarks/pipeline.py --json out.json
    python benchmarks/pipeline.py --smoke
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common as C  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import workload as W  # noqa: E402

VARIANTS = ("model_only", "end_to_end")
PASS_THROUGH = ("batch", "steps", "warmup", "device", "amp", "threads", "method", "workers", "data_dir")


def write_image_folder(root: str, n_images: int, n_classes: int, size: tuple[int, int], seed: int = 0) -> None:
    """Photo-like JPEGs: a smooth random colour field plus fine noise (compresses like a photo, unlike pure
    noise or flat colour), ``n_images`` spread over ``n_classes`` folders."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    w, h = size
    for i in range(n_images):
        folder = os.path.join(root, f"class_{i % n_classes:02d}")
        os.makedirs(folder, exist_ok=True)
        coarse = rng.uniform(0, 255, (max(2, h // 32), max(2, w // 32), 3)).astype(np.uint8)
        img = Image.fromarray(coarse).resize((w, h), Image.BICUBIC)
        arr = np.asarray(img, dtype=np.int16) + rng.integers(-12, 13, (h, w, 3))
        Image.fromarray(arr.clip(0, 255).astype(np.uint8)).save(os.path.join(folder, f"{i:05d}.jpg"), quality=90)


def build_workload(args):
    """The method on the library's classification task reading ``args.data_dir`` (as ``radapter train`` would)."""
    extra = {
        "task": "classification",
        "data.kind": "imagefolder",
        "data.train": args.data_dir,
        "data.templates": "simple",
        "data.workers": args.workers,
    }
    cfg = W.run_config(args.method, smoke=args.smoke, batch=args.batch, device=args.device, amp=args.amp, extra=extra)
    return W.build(cfg)


def train_loader(wl, total: int):
    """``Trainer._loader`` of one process: the step sampler, worker processes, the task's collate."""
    from radapter.training.sampler import StepSampler

    cfg = wl.cfg
    sampler = StepSampler(wl.task.train_size(), cfg.optim.batch_size, cfg.seed, total, 0, 0, 1)
    return torch.utils.data.DataLoader(
        wl.task.train_dataset(),
        batch_size=cfg.optim.batch_size,
        sampler=sampler,
        num_workers=cfg.data.workers,
        collate_fn=wl.task.collate,
        drop_last=False,
        pin_memory=wl.device.type == "cuda",
        persistent_workers=False,
        generator=torch.Generator().manual_seed(cfg.seed),
    )


def loader_images_per_s(wl, n: int) -> float:
    """Decode + augment + caption throughput of one process (what each DataLoader worker can deliver)."""
    import time

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a DataLoader worker
    try:
        dataset = wl.task.train_dataset()
        n = min(n, wl.task.train_size())
        dataset[(0, 0, 0)]
        t = time.perf_counter()
        for i in range(n):
            dataset[(i, 0, 0)]
        return n / (time.perf_counter() - t)
    finally:
        torch.set_num_threads(threads)


def worker(args) -> dict:
    C.setup_threads(args)
    wl = build_workload(args)
    n = args.warmup + args.steps
    loader = iter(train_loader(wl, n))
    times = []
    if args.worker == "model_only":
        batch = next(loader).to(wl.device)
        step = lambda: wl.step(batch)  # noqa: E731
    else:
        step = lambda: wl.step(next(loader).to(wl.device))  # noqa: E731
    for i in range(n):
        dt = C.timed(step, args.device)
        if i >= args.warmup:
            times.append(dt)
    source = "batch in memory" if args.worker == "model_only" else "ImageFolderDataset via the task"
    return {
        "variant": args.worker,
        "step_times": times,
        "source": source,
        "peak_rss_mb": C.peak_rss_mb(),
        "loader_images_per_s": loader_images_per_s(wl, args.batch * 2) if args.worker == "end_to_end" else None,
        "image_size": wl.backbone.image_size,
    }


def run(args) -> dict:
    tmp = None
    if args.data_dir is None:
        tmp = tempfile.mkdtemp(prefix="radapter-pipeline-")
        args.data_dir = tmp
        n_images = args.batch * (args.warmup + args.steps + 1)
        size = (64, 48) if args.smoke else (500, 375)
        write_image_folder(tmp, n_images, min(8, n_images), size)
    try:
        runs = {v: [] for v in VARIANTS}
        for rnd, variant in C.alternated(VARIANTS, args.rounds):
            res = C.run_variant("pipeline.py", worker, args, variant, PASS_THROUGH)
            runs[variant].append(res)
            print(
                f"  round {rnd + 1}/{args.rounds} {variant:10s} steps {[f'{t:.2f}' for t in res['step_times']]} s",
                flush=True,
            )
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    med = {v: C.median([t for r in rs for t in r["step_times"]]) for v, rs in runs.items()}
    out = {
        "model_only_images_per_s": args.batch / med["model_only"],
        "end_to_end_images_per_s": args.batch / med["end_to_end"],
    }
    out["_details"] = {
        "loader_images_per_s": C.median([r["loader_images_per_s"] for r in runs["end_to_end"]]),
        "runs": runs,
        "source": runs["end_to_end"][0]["source"],
        "image_size": runs["end_to_end"][0]["image_size"],
    }
    return out


def report(out: dict, args) -> str:
    ratio = out["end_to_end_images_per_s"] / out["model_only_images_per_s"]
    rows = [
        ["model only (one collated batch, reused)", out["model_only_images_per_s"], 1.0],
        [
            f"end to end (JPEG → {out['_details']['source']} → DataLoader)",
            out["end_to_end_images_per_s"],
            ratio,
        ],
    ]
    return "\n".join(
        [
            f"pipeline: {'tiny smoke model' if args.smoke else 'open_clip ViT-B/16'}, {args.method}, batch {args.batch}, "
            f"{args.workers} loader workers, {args.device} {args.amp or 'fp32'}, {args.rounds} rounds × "
            f"({args.warmup} warm-up + {args.steps} timed) steps",
            C.environment(args.device, args.threads),
            C.table(rows, ["variant", "images/s", "× model only"]),
            f"one loader process decodes + augments {out['_details']['loader_images_per_s']:.0f} images/s "
            f"({args.workers} workers run in parallel with the step)",
        ]
    )


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    C.add_common_args(p, steps=3, warmup=1, rounds=2, batch=8)
    p.add_argument("--method", default="radapter", choices=list(W.METHODS))
    p.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    p.add_argument("--data-dir", default=None, help="an existing ImageFolder to read instead of writing one")
    args = C.parse_or_run_worker(p, argv, worker)
    if args is None:
        return {}
    out = run(args)
    return C.finish(out, args, report(out, args))


if __name__ == "__main__":
    main()
