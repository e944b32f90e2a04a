"""Does the retrieval story play out in the built-in world with the shipped world CLIP? (issue 10 study)

Fine-tunes the shipped world CLIP on one domain's instance-captioned pairs
(`radapter.data.world.instances.retrieval_benchmark`) and measures retrieval R@1 (mean of image→text and
text→image) in distribution and on the held-out domains, for

* zero-shot;
* full contrastive fine-tuning (FLYP: every weight trains, CLIP loss, logit scale frozen) and WiSE-FT
  (weight interpolation zero-shot → fine-tuned);
* R-Adapter (`apply_r_adapter`, MPM-NCE with the image index as group label, margin 0.05, no label
  smoothing, EMA, adapter dropping) at several re-scaling α (`iter_alpha_merges`).

A minimal loop on the library, not radapter's trainer, recipe as the classification demo's
(`radapter.cli.demo`): batch 128, 200 steps, 20 warm-up, cosine, AdamW, grad clip 1; R-Adapter lr 3e-3,
wd 0, EMA 0.995, p 0.2; FT lr 1e-4, wd 0.1. One caption per image per sample, drawn at random.

    OMP_NUM_THREADS=1 PYTHONPATH=src python scripts/probe_world_retrieval.py --seeds 0 --out /tmp/probe.json
    ... --design '{"p_colour": 0.5}' --rho 0.8          # another caption design / a colour cue

The results of the study that chose the shipped design are in the module docstring of
`radapter.data.world.instances` and in the report of issue 10.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

import radapter
from radapter.data.world import images_to_tensor, load_world_clip
from radapter.data.world.instances import InstanceCaptionSpec, retrieval_benchmark
from radapter.evaluation.retrieval import retrieval_metrics

WISE_ALPHAS = (0.25, 0.5, 0.75)
RADAPTER_ALPHAS = (0.25, 0.5, 0.8, 1.0)


def encode_set(model, tokenizer, split, batch: int = 500) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Image features [N, D], caption features [M, D], caption → image index [M]; each encoded once."""
    texts = [c for caps in split.captions for c in caps]
    t2i = torch.tensor([i for i, caps in enumerate(split.captions) for _ in caps])
    with torch.no_grad():
        f = torch.cat(
            [model.encode_image(images_to_tensor(split.images[i : i + batch])) for i in range(0, len(split), batch)]
        )
        g = torch.cat([model.encode_text(tokenizer(texts[i : i + batch])) for i in range(0, len(texts), batch)])
    return F.normalize(f, dim=-1), F.normalize(g, dim=-1), t2i


def evaluate(model, tokenizer, splits) -> dict[str, dict]:
    """Retrieval metrics of every test split; ``mean:R@1`` is the number the study compares."""
    model.eval()
    return {name: retrieval_metrics(*encode_set(model, tokenizer, s)) for name, s in splits.items() if name != "train"}


def summary(metrics: dict[str, dict]) -> dict[str, float]:
    ood = [m["mean:R@1"] for name, m in metrics.items() if name.startswith("ood_")]
    return {"id": metrics["id"]["mean:R@1"], "ood": float(np.mean(ood))} | {
        name[4:]: m["mean:R@1"] for name, m in metrics.items() if name.startswith("ood_")
    }


def lr_at(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def batches(train, tokenizer, steps: int, batch: int, seed: int):
    """(images [B, 3, H, W], tokens [B, L], image index [B]) per step: epochs of a seeded permutation, one
    caption per image drawn from the seeded generator."""
    rng = np.random.default_rng([seed, 99])
    images = images_to_tensor(train.images)
    n = len(train)
    per_epoch = n // batch
    perm = None
    for step in range(steps):
        if step % per_epoch == 0:
            perm = rng.permutation(n)
        idx = perm[(step % per_epoch) * batch : (step % per_epoch + 1) * batch]
        caps = [train.captions[i][rng.integers(len(train.captions[i]))] for i in idx]
        yield images[idx], tokenizer(caps), torch.from_numpy(idx)


def train(model, params, loss_fn, splits, tokenizer, args, lr: float, wd: float, seed: int, after_step=None):
    torch.manual_seed(seed)
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]
    opt = torch.optim.AdamW([g for g in groups if g["params"]], lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_at(s, args.warmup, args.steps))
    model.train()
    scale = float(model.logit_scale.exp())
    losses = []
    for images, tokens, groups_ in batches(splits["train"], tokenizer, args.steps, args.batch, seed):
        f = F.normalize(model.encode_image(images), dim=-1)
        g = F.normalize(model.encode_text(tokens), dim=-1)
        loss = loss_fn(f, g, groups_, scale)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if after_step is not None:
            after_step(model)
        losses.append(loss.item())
    model.eval()
    return losses


def run_ft(base, tokenizer, splits, args, seed: int) -> dict:
    model = copy.deepcopy(base)
    model.logit_scale.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    t0 = time.process_time()
    losses = train(
        model,
        params,
        lambda f, g, _, s: radapter.clip_loss(f, g, s),
        splits,
        tokenizer,
        args,
        args.ft_lr,
        args.ft_wd,
        seed,
    )
    train_cpu = time.process_time() - t0
    rows = {"ft": summary(evaluate(model, tokenizer, splits))}
    zero, tuned = base.state_dict(), model.state_dict()
    wise = copy.deepcopy(base)
    for a in WISE_ALPHAS:
        wise.load_state_dict(
            {k: (1 - a) * zero[k] + a * tuned[k] if zero[k].is_floating_point() else zero[k] for k in zero}
        )
        rows[f"wiseft@{a:g}"] = summary(evaluate(wise, tokenizer, splits))
    return {"rows": rows, "train_cpu_s": train_cpu, "loss_first_last": [losses[0], float(np.mean(losses[-10:]))]}


def run_radapter(base, tokenizer, splits, args, seed: int) -> dict:
    model = copy.deepcopy(base)
    cfg = radapter.RAdapterConfig(drop_prob=args.drop, ema_momentum=args.ema, alpha=0.8, rank=args.rank)
    radapter.apply_r_adapter(model, cfg)
    params = radapter.adapter_parameters(model)
    t0 = time.process_time()
    losses = train(
        model,
        params,
        lambda f, g, groups, s: radapter.mpm_nce_loss(f, g, groups, s, margin=args.margin, label_smoothing=0.0),
        splits,
        tokenizer,
        args,
        args.ra_lr,
        0.0,
        seed,
        after_step=radapter.ema_update,
    )
    train_cpu = time.process_time() - t0
    rows = {}
    for a, merged in radapter.iter_alpha_merges(model, RADAPTER_ALPHAS):
        rows[f"radapter@{a:g}"] = summary(evaluate(merged.eval(), tokenizer, splits))
    return {"rows": rows, "train_cpu_s": train_cpu, "loss_first_last": [losses[0], float(np.mean(losses[-10:]))]}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--n-train", type=int, default=4000)
    p.add_argument("--n-test", type=int, default=500)
    p.add_argument("--rho", type=float, default=0.0, help="class-colour cue of train and id")
    p.add_argument("--design", default="{}", help="JSON overrides of InstanceCaptionSpec")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--ft-lr", type=float, default=1e-4)
    p.add_argument("--ft-wd", type=float, default=0.1)
    p.add_argument("--ra-lr", type=float, default=3e-3)
    p.add_argument("--ema", type=float, default=0.995)
    p.add_argument("--drop", type=float, default=0.2)
    p.add_argument("--margin", type=float, default=0.05)
    p.add_argument("--rank", type=int, default=None)
    p.add_argument("--methods", nargs="+", default=["ft", "radapter"], choices=["ft", "radapter"])
    p.add_argument("--out", default=None, help="write the results as JSON here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    design = InstanceCaptionSpec(**json.loads(args.design))
    base, _, tokenizer = load_world_clip()
    result = {"args": vars(args), "design": design.__dict__, "seeds": {}}
    for seed in args.seeds:
        t0 = time.process_time()
        splits = retrieval_benchmark(seed, args.n_train, args.n_test, rho=args.rho, caption_spec=design)
        gen_cpu = time.process_time() - t0
        t0 = time.process_time()
        rows = {"zeroshot": summary(evaluate(base, tokenizer, splits))}
        eval_cpu = time.process_time() - t0
        per = {"generate_cpu_s": gen_cpu, "eval_cpu_s": eval_cpu}
        for method in args.methods:
            got = (run_ft if method == "ft" else run_radapter)(base, tokenizer, splits, args, seed)
            rows.update(got.pop("rows"))
            per[method] = got
        result["seeds"][seed] = {"rows": rows, **per}
        print(f"seed {seed}: {json.dumps(per)}", file=sys.stderr)
        print_table(rows)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    return result


def print_table(rows: dict[str, dict]) -> None:
    zs = rows["zeroshot"]
    cols = list(zs)
    print("| method | " + " | ".join(cols) + " | ΔID | ΔOOD |")
    print("|---|" + "---:|" * (len(cols) + 2))
    for name, r in rows.items():
        cells = " | ".join(f"{r[c]:.1f}" for c in cols)
        print(f"| {name} | {cells} | {r['id'] - zs['id']:+.1f} | {r['ood'] - zs['ood']:+.1f} |")


if __name__ == "__main__":
    main()
