"""Design check of the world benchmark: does full fine-tuning win ID and lose OOD, and WiSE-FT recover?

Not the radapter trainer (that is `radapter demo`): a minimal, self-contained full fine-tune of a
world CLIP's image tower with a linear head initialised from the zero-shot text embeddings (the
WiSE-FT / FLYP "ft" baseline), then weight-space ensembles. It prints ID / ID-shift / OOD accuracy so
the world's knobs (colour cue rho, domain difficulty, the pretrained checkpoint) can be judged against
issue 5's targets before the real methods run on it.

    python scripts/check_world_story.py --model src/radapter/assets/world_clip --steps 300
"""

from __future__ import annotations

import argparse
import copy
import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from radapter.data.world.clip import WORLD_CLIP_DIR, load_world_clip, zero_shot_head
from radapter.data.world.datasets import images_to_tensor
from radapter.data.world.generate import downstream_benchmark


class Classifier(torch.nn.Module):
    def __init__(self, visual: torch.nn.Module, head: torch.Tensor, scale: float) -> None:
        super().__init__()
        self.visual, self.head, self.scale = visual, torch.nn.Parameter(head.clone()), scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * F.normalize(self.visual(x), dim=-1) @ self.head.T


@torch.no_grad()
def accuracy(model: torch.nn.Module, images: np.ndarray, labels: np.ndarray) -> float:
    model.eval()
    pred = torch.cat([model(images_to_tensor(images[i : i + 500])).argmax(-1) for i in range(0, len(images), 500)])
    return 100.0 * float((pred.numpy() == labels).mean())


def evaluate(model: torch.nn.Module, splits: dict) -> dict[str, float]:
    out = {name: accuracy(model, s.images, s.labels) for name, s in splits.items() if name != "train"}
    out["ood_avg"] = float(np.mean([v for k, v in out.items() if k.startswith("ood_")]))
    return out


def interpolate(zs: torch.nn.Module, ft: torch.nn.Module, alpha: float) -> torch.nn.Module:
    """WiSE-FT: (1 - alpha) * zero-shot + alpha * fine-tuned, parameter by parameter."""
    mixed = copy.deepcopy(zs)
    sd_zs, sd_ft = zs.state_dict(), ft.state_dict()
    mixed.load_state_dict({k: (1 - alpha) * sd_zs[k] + alpha * sd_ft[k] for k in sd_zs})
    return mixed


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(WORLD_CLIP_DIR))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rho", type=float, default=0.8)
    p.add_argument("--n-train", type=int, default=5000)
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=30)
    args = p.parse_args(argv)

    t0 = time.time()
    clip, _, tokenizer = load_world_clip(args.model)
    splits = downstream_benchmark(args.seed, args.n_train, args.n_test, rho=args.rho)
    head = zero_shot_head(clip, tokenizer, splits["train"].spec.classes)
    zs = Classifier(clip.visual, head, float(clip.logit_scale.exp()))
    ft = copy.deepcopy(zs)
    torch.manual_seed(args.seed)
    opt = torch.optim.AdamW(ft.parameters(), lr=args.lr, weight_decay=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: (
            (s + 1) / args.warmup
            if s < args.warmup
            else 0.5 * (1 + math.cos(math.pi * (s - args.warmup) / max(1, args.steps - args.warmup)))
        ),
    )
    x, y = images_to_tensor(splits["train"].images), torch.from_numpy(splits["train"].labels)
    rng = np.random.default_rng(args.seed)
    bar = tqdm(range(args.steps), desc="ft", mininterval=10)
    for _ in bar:
        ft.train()
        idx = torch.from_numpy(rng.integers(len(y), size=args.batch))
        loss = F.cross_entropy(ft(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)

    rows = {"zeroshot": evaluate(zs, splits), "ft": evaluate(ft, splits)}
    for alpha in (0.25, 0.5, 0.75):
        rows[f"wiseft-{alpha}"] = evaluate(interpolate(zs, ft, alpha), splits)
    cols = list(rows["zeroshot"])
    print("method        " + " ".join(f"{c.removeprefix('ood_')[:8]:>8}" for c in cols))
    for name, r in rows.items():
        print(f"{name:13s} " + " ".join(f"{r[c]:8.1f}" for c in cols))
    print(f"({time.time() - t0:.0f}s)")


if __name__ == "__main__":
    main()
