"""Supervised probe that gates the world's image design before contrastive pretraining.

Trains the world CLIP's open_clip vision tower plus a linear head on class labels for a few hundred
steps and prints accuracy per domain. Issue 5's study: if a design cannot reach >= 60 % here in about
two minutes on 2 CPU cores, contrastive pretraining will not learn the class either.

    python scripts/probe_world.py --steps 300
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from radapter.data.world.clip import build_world_clip, world_clip_model_cfg
from radapter.data.world.datasets import images_to_tensor
from radapter.data.world.generate import generate


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--patch", type=int, default=4)
    p.add_argument("--width", type=int, default=96)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--n-train", type=int, default=16384)
    p.add_argument("--n-test", type=int, default=1200)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    torch.manual_seed(args.seed)
    cfg = world_clip_model_cfg(patch_size=args.patch, vision_width=args.width, vision_layers=args.layers)
    visual = build_world_clip(cfg).visual
    head = torch.nn.Linear(cfg["embed_dim"], 10)
    params = list(visual.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: (
            (s + 1) / args.warmup
            if s < args.warmup
            else 0.5 * (1 + math.cos(math.pi * (s - args.warmup) / max(1, args.steps - args.warmup)))
        ),
    )
    t0 = time.time()
    train = generate(n=args.n_train, seed=[args.seed, 100])
    test = generate(n=args.n_test, seed=[args.seed, 101])
    xtr, ytr = images_to_tensor(train.images), torch.from_numpy(train.labels)
    xte = images_to_tensor(test.images)
    print(f"data: {time.time() - t0:.1f}s")
    rng = np.random.default_rng(args.seed)
    bar = tqdm(range(args.steps), desc="probe")
    for _ in bar:
        idx = torch.from_numpy(rng.integers(len(ytr), size=args.batch))
        loss = F.cross_entropy(head(visual(xtr[idx])), ytr[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    visual.eval()
    with torch.no_grad():
        pred = torch.cat([head(visual(xte[i : i + 500])).argmax(-1) for i in range(0, len(xte), 500)]).numpy()
    correct = pred == test.labels
    result = {test.spec.domains[d]: 100 * correct[test.domains == d].mean() for d in np.unique(test.domains)}
    result["avg"] = float(np.mean(list(result.values())))
    print(" ".join(f"{k}={v:.1f}" for k, v in result.items()), f"time={time.time() - t0:.0f}s")
    return result


if __name__ == "__main__":
    main()
