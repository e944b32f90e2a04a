"""End-to-end training throughput — JPEG decode and augmentation from an on-disk ImageFolder, prompt
tokenisation, R-Adapter step — against the same step on tensors already in memory (model only).

The benchmark writes its own ImageFolder of photo-sized JPEGs (500×375, quality 90) to a temporary folder,
reads it with ``radapter.data.ImageFolderDataset`` (torchvision's ``ImageFolder`` if radapter's is missing)
and the paper's training transform (RandomResizedCrop 224, scale 0.9–1.0, bicubic, CLIP normalisation),
through a ``DataLoader`` with worker processes. The two variants run in alternated subprocesses.

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


def make_dataset(root: str, image_size: int):
    try:
        from radapter.data.folders import ImageFolderDataset
        from radapter.data.transforms import train_transform

        return ImageFolderDataset(root, transform=train_transform(image_size), progress=False), "radapter"
    except ImportError:
        from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
        from torchvision import transforms as T
        from torchvision.datasets import ImageFolder

        tf = T.Compose(
            [
                T.RandomResizedCrop(image_size, scale=(0.9, 1.0), interpolation=T.InterpolationMode.BICUBIC),
                T.ToTensor(),
                T.Normalize(OPENAI_DATASET_MEAN, OPENAI_DATASET_STD),
            ]
        )
        return ImageFolder(root, transform=tf), "torchvision"


def loader_images_per_s(root: str, image_size: int, n: int) -> float:
    """Decode + augment throughput of one process (what each DataLoader worker can deliver)."""
    import time

    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a DataLoader worker
    try:
        dataset, _ = make_dataset(root, image_size)
        n = min(n, len(dataset))
        dataset[0]
        t = time.perf_counter()
        for i in range(n):
            dataset[i]
        return n / (time.perf_counter() - t)
    finally:
        torch.set_num_threads(threads)


def worker(args) -> dict:
    C.setup_threads(args)
    cfg = C.model_config(args.smoke)
    model = C.apply_method(C.build_model(args.smoke, args.device), args.method)
    step = C.TrainStep(model, args.method, args.device, args.amp)
    n = args.warmup + args.steps
    times = []
    if args.worker == "model_only":
        images, tokens, labels = C.make_batch(cfg, args.batch, args.device)
        for i in range(n):
            dt = C.timed(lambda: step(images, tokens, labels), args.device)
            if i >= args.warmup:
                times.append(dt)
        source = "tensors in memory"
    else:
        dataset, source = make_dataset(args.data_dir, cfg["vision_cfg"]["image_size"])
        classnames = getattr(dataset, "classnames", None) or [c.replace("_", " ") for c in dataset.classes]
        tok = C.tokenizer(cfg)
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_size=args.batch,
            shuffle=True,
            drop_last=True,
            num_workers=args.workers,
            persistent_workers=args.workers > 0,
            generator=torch.Generator().manual_seed(0),
        )

        def batches():
            while True:
                yield from loader

        it = batches()

        def e2e_step():
            images, labels = next(it)
            tokens = tok([f"a photo of a {classnames[int(y)]}." for y in labels])
            step(images.to(args.device), tokens.to(args.device), labels.to(args.device))

        for i in range(n):
            dt = C.timed(e2e_step, args.device)
            if i >= args.warmup:
                times.append(dt)
    return {"variant": args.worker, "step_times": times, "source": source, "peak_rss_mb": C.peak_rss_mb()}


def run(args) -> dict:
    cfg = C.model_config(args.smoke)
    tmp = None
    if args.data_dir is None:
        tmp = tempfile.mkdtemp(prefix="radapter-pipeline-")
        args.data_dir = tmp
        n_images = args.batch * (args.warmup + args.steps + 1)
        size = (64, 48) if args.smoke else (500, 375)
        write_image_folder(tmp, n_images, min(8, n_images), size)
    try:
        loader_ips = loader_images_per_s(args.data_dir, cfg["vision_cfg"]["image_size"], args.batch * 2)
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
        "loader_images_per_s": loader_ips,
        "runs": runs,
        "source": runs["end_to_end"][0]["source"],
        "image_size": cfg["vision_cfg"]["image_size"],
    }
    return out


def report(out: dict, args) -> str:
    ratio = out["end_to_end_images_per_s"] / out["model_only_images_per_s"]
    rows = [
        ["model only (tensors in memory)", out["model_only_images_per_s"], 1.0],
        [
            f"end to end (JPEG → {out['_details']['source']} ImageFolder → DataLoader)",
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
    p.add_argument("--method", default="radapter", choices=list(C.METHODS))
    p.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    p.add_argument("--data-dir", default=None, help="an existing ImageFolder to read instead of writing one")
    args = C.parse_or_run_worker(p, argv, worker)
    if args is None:
        return {}
    out = run(args)
    return C.finish(out, args, report(out, args))


if __name__ == "__main__":
    main()
