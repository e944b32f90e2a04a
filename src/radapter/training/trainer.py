"""One training loop for every method: AdamW, warm-up + cosine, clipping, accumulation, AMP, DDP, EMA hook,
atomic checkpoints and exact resumption, then evaluation of the method's model variants.

Reproducibility: one seed drives initialisation (the same on every rank), data order (the
:class:`~radapter.training.sampler.StepSampler`), augmentations and caption templates (per-item seeds) and
adapter dropping (the global torch RNG, saved in every checkpoint). A run killed at any point and resumed
with ``--resume`` ends exactly where an uninterrupted run ends.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from typing import Any

import torch
from torch.utils.data import DataLoader

from ..backbones.loading import load_model
from ..config import RunConfig, save_config
from ..evaluation import evaluate_classifier, summarize_sets
from ..methods import Task, TrainStep, get_method
from ..utils import atomic_write_text
from ..zeroshot import build_zero_shot_head, fill_template
from .checkpoint import latest_checkpoint, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .datasets import RunData, TrainItems, build_run_data
from .distributed import DistInfo, any_true, barrier, init_distributed
from .sampler import StepSampler
from .schedule import build_scheduler

log = logging.getLogger("radapter")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def _autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        if device.type != "cuda":
            raise ValueError("optim.precision: fp16 needs CUDA (use bf16 on CPU)")
        return torch.float16
    raise ValueError(f"optim.precision: unknown precision {precision!r}; expected fp32, bf16 or fp16")


class Trainer:
    """Runs one configured job: train (if the method trains), evaluate, export, report.

    Args:
        cfg: The resolved run configuration.
        resume: Continue from ``<out>/checkpoints/latest``.
        stop_after: Stop (as if killed) after this many optimizer steps — for tests and for splitting long jobs.
    """

    def __init__(self, cfg: RunConfig, resume: bool = False, stop_after: int | None = None) -> None:
        self.cfg, self.resume, self.stop_after = cfg, resume, stop_after
        self.dist: DistInfo = init_distributed(cfg.device)
        self.device = self.dist.device
        self.autocast = _autocast_dtype(cfg.optim.precision, self.device)
        self.out = cfg.out
        self.train_seconds = 0.0

    # --- set-up ----------------------------------------------------------------------------------------
    def _prepare_out_dir(self) -> str | None:
        ckpt = latest_checkpoint(self.out)
        if ckpt and not self.resume:
            raise FileExistsError(
                f"{self.out}: already holds a run (checkpoint {ckpt}); pass --resume to continue "
                "it or choose another --out"
            )
        if self.resume and not ckpt:
            log.warning("--resume: no checkpoint in %s, starting from scratch", self.out)
        if self.dist.is_main:
            os.makedirs(self.out, exist_ok=True)
            save_config(self.cfg, os.path.join(self.out, "config.yaml"))
        return ckpt if self.resume else None

    def setup(self, eval_only: bool = False) -> None:
        """Loads the model, data and method. ``eval_only``: for a finished run (its trained state is loaded)."""
        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        if eval_only:
            self.ckpt = latest_checkpoint(self.out)
        else:
            self.ckpt = self._prepare_out_dir()
        self.loaded = load_model(cfg.model.name, cfg.model.pretrained, self.device)
        model = self.loaded.model.eval()
        self.data: RunData = build_run_data(
            cfg.data,
            self.loaded.image_size,
            self.loaded.mean,
            self.loaded.std,
            cfg.seed,
            progress=cfg.progress and self.dist.is_main,
        )
        if self.data.skipped:
            log.warning("%s", self.data.skipped)
        head = build_zero_shot_head(
            model, self.loaded.tokenizer, self.data.classnames, self.data.templates, device=self.device
        )
        self.task = Task(self.data.classnames, self.data.templates, head, self.device)
        torch.manual_seed(cfg.seed)  # the same adapter/head initialisation on every rank and every resume
        self.method = get_method(cfg.method.name)(cfg, self.loaded, self.task)
        self.trainable = self.method.trainable_count()
        if eval_only and self.method.trains:
            if self.ckpt is None:
                raise FileNotFoundError(f"{self.out}: no checkpoint to evaluate (train it first)")
            tensors, state, _ = load_checkpoint(self.ckpt)
            self.method.load_state_dict({k: v.to(self.device) for k, v in tensors.items()})
            self.trained_step = int(state["step"])
            self.train_seconds = float(state.get("train_seconds", 0.0))
            if not state.get("finished"):
                log.warning("%s: evaluating an unfinished run (step %d)", self.out, self.trained_step)

    # --- training --------------------------------------------------------------------------------------
    def total_steps(self) -> int:
        o = self.cfg.optim
        if o.steps is not None:
            return o.steps
        return o.epochs * (len(self.data.targets) // o.batch_size)

    def _loader(self, start_step: int, total: int) -> DataLoader:
        o = self.cfg.optim
        micro = o.batch_size // (self.dist.world_size * o.accum_steps)
        if micro * self.dist.world_size * o.accum_steps != o.batch_size:
            raise ValueError(
                f"optim.batch_size={o.batch_size} must be divisible by processes × accum_steps "
                f"({self.dist.world_size} × {o.accum_steps})"
            )
        sampler = StepSampler(
            len(self.data.targets), o.batch_size, self.cfg.seed, total, start_step, self.dist.rank, self.dist.world_size
        )
        items = TrainItems(self.data.train, self.data.train_transform, len(self.data.templates))
        # a private generator: worker seeds must not consume the global RNG (dropping masks use it)
        gen = torch.Generator().manual_seed(self.cfg.seed)
        return DataLoader(
            items,
            batch_size=micro,
            sampler=sampler,
            num_workers=self.cfg.data.workers,
            drop_last=False,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
            generator=gen,
        )

    def _tokens(self, labels: torch.Tensor, template_idx: torch.Tensor) -> Any:
        if not self.method.contrastive:
            return None
        texts = [
            fill_template(self.data.templates[t], self.data.classnames[c])
            for c, t in zip(labels.tolist(), template_idx.tolist())
        ]
        tokens = self.loaded.tokenizer(texts)
        return tokens.to(self.device)

    def _checkpoint(self, step: int, optimizer, scheduler, scaler, finished: bool = False) -> None:
        if not self.dist.is_main:
            return
        state = {
            "step": step,
            "finished": finished,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler else None,
            "rng": rng_state(),
            "train_seconds": self.train_seconds,
        }
        every = self.cfg.checkpoint_every
        save_checkpoint(
            self.out,
            step,
            self.method.state_dict(),
            state,
            self.cfg.to_dict(),
            keep=self.cfg.keep,
            permanent=finished or (every > 0 and step % every == 0),
        )

    def train(self) -> None:
        cfg, o = self.cfg, self.cfg.optim
        total = self.total_steps()
        if total <= 0:
            raise ValueError(
                f"no training steps: {len(self.data.targets)} images, batch {o.batch_size}, "
                f"{o.epochs} epochs (set optim.steps or a smaller optim.batch_size)"
            )
        optimizer = torch.optim.AdamW(self.method.param_groups(), lr=o.lr, weight_decay=o.weight_decay)
        scheduler = build_scheduler(optimizer, o.warmup_steps, total, self.method.group_starts(total))
        scaler = torch.amp.GradScaler("cuda") if self.autocast == torch.float16 else None
        step = 0
        if self.ckpt:
            tensors, state, _ = load_checkpoint(self.ckpt)
            self.method.load_state_dict({k: v.to(self.device) for k, v in tensors.items()})
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            if scaler and state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
            set_rng_state(state["rng"])
            step, self.train_seconds = int(state["step"]), float(state.get("train_seconds", 0.0))
            log.info("resumed from %s at step %d", self.ckpt, step)
            if state.get("finished"):
                return
        module = TrainStep(self.method)
        if self.dist.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            module = torch.nn.parallel.DistributedDataParallel(module, device_ids=ids, broadcast_buffers=False)
        self.method.model.train()
        params = [p for g in optimizer.param_groups for p in g["params"]]
        metrics_path = os.path.join(self.out, "metrics.jsonl")
        writer = self._tensorboard()
        bar = None
        if cfg.progress and self.dist.is_main:
            from tqdm import tqdm

            bar = tqdm(total=total, initial=step, desc=f"train {cfg.method.name}", dynamic_ncols=True)
        steps_per_epoch = max(1, len(self.data.targets) // o.batch_size)
        micro_iter = iter(self._loader(step, total))
        t_last = time.perf_counter()
        while step < total:
            loss_sum = 0.0
            for micro in range(o.accum_steps):
                images, labels, template_idx = next(micro_iter)
                images = images.to(self.device, non_blocking=True)
                labels = labels.to(self.device)
                tokens = self._tokens(labels, template_idx)
                sync = micro == o.accum_steps - 1 or not self.dist.distributed
                ctx = contextlib.nullcontext() if sync else module.no_sync()
                with ctx:
                    with torch.autocast(self.device.type, dtype=self.autocast, enabled=self.autocast is not None):
                        loss = module(images, tokens, labels) / o.accum_steps
                    (scaler.scale(loss) if scaler else loss).backward()
                loss_sum += float(loss.detach())
            if any_true(not math.isfinite(loss_sum), self.device):
                raise TrainingDiverged(
                    f"loss became {loss_sum} at step {step + 1}; the last good checkpoint is kept "
                    f"in {os.path.join(self.out, 'checkpoints')} (lower optim.lr or use fp32)"
                )
            if scaler:
                scaler.unscale_(optimizer)
            grad_norm = torch.nn.utils.clip_grad_norm_(params, o.grad_clip if o.grad_clip else float("inf"))
            if scaler:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            self.method.after_step(step)
            step += 1
            now = time.perf_counter()
            self.train_seconds += now - t_last
            t_last = now
            if self.dist.is_main:
                record = {
                    "step": step,
                    "loss": loss_sum,
                    "lr": optimizer.param_groups[-1]["lr"],
                    "grad_norm": float(grad_norm),
                    "epoch": (step - 1) // steps_per_epoch,
                    "train_seconds": round(self.train_seconds, 3),
                }
                with open(metrics_path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(record) + "\n")
                if writer:
                    writer.add_scalar("train/loss", loss_sum, step)
                    writer.add_scalar("train/lr", record["lr"], step)
                if bar:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss_sum:.4f}", lr=f"{record['lr']:.2e}")
                elif step % max(1, cfg.log_every) == 0 or step == total:
                    log.info("step %d/%d loss %.4f lr %.3e", step, total, loss_sum, record["lr"])
            epoch_end = step % steps_per_epoch == 0
            periodic = cfg.checkpoint_every > 0 and step % cfg.checkpoint_every == 0
            if step == total or periodic or (cfg.checkpoint_every == 0 and epoch_end):
                self._checkpoint(step, optimizer, scheduler, scaler, finished=step == total)
                t_last = time.perf_counter()  # checkpoint I/O is not training time
            if self.stop_after is not None and step >= self.stop_after and step < total:
                if bar:
                    bar.close()
                raise KeyboardInterrupt(f"stopped after step {step} (stop_after)")
        if bar:
            bar.close()
        if writer:
            writer.close()

    def _tensorboard(self):
        if not (self.cfg.tensorboard and self.dist.is_main):
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise ImportError("tensorboard: true needs the tensorboard package (pip install 'radapter[tb]')") from e
        return SummaryWriter(os.path.join(self.out, "tensorboard"))

    # --- evaluation ------------------------------------------------------------------------------------
    def evaluate(self, step: int, results_name: str = "results.jsonl", export: bool = True) -> list[dict]:
        """Evaluates every variant of the method on every eval set; returns results rows (rank 0)."""
        cfg = self.cfg
        rows = []
        exports = {}
        if self.dist.is_main:
            exports = self.method.export(self.out) if self.method.trains and export else {}
            adapter_bytes = _dir_bytes(exports.get("adapter"))
            for variant in self.method.variants():
                res = evaluate_classifier(
                    variant.model,
                    self.data.eval_sets,
                    head=variant.head,
                    tokenizer=self.loaded.tokenizer,
                    classnames=self.data.classnames,
                    templates=self.data.templates,
                    device=self.device,
                    batch_size=cfg.eval.batch_size,
                    workers=cfg.data.workers,
                    max_images=cfg.eval.max_images,
                    progress=cfg.progress,
                    autocast_dtype=self.autocast,
                )
                row = {
                    "method": cfg.method.name,
                    "alpha": variant.alpha,
                    "step": step,
                    "seed": cfg.seed,
                    "trainable_params": self.trainable,
                    "adapter_bytes": adapter_bytes,
                    "train_seconds": round(self.train_seconds, 3),
                    **res,
                    **summarize_sets(res, self.data.eval_sets),
                    **variant.tags,
                }
                rows.append(row)
                del variant
            mark_alpha_choices(rows, cfg.method.adapter.alpha if cfg.method.name == "radapter" else 0.5)
            for row in rows:
                row["config"] = cfg.to_dict()
            atomic_write_text(os.path.join(self.out, results_name), "".join(json.dumps(r) + "\n" for r in rows))
            self._report(rows, os.path.splitext(results_name)[0])
        barrier()
        return rows

    def _report(self, rows: list[dict], stem: str = "results") -> None:
        from ..reports import to_csv, to_markdown
        from ..reports.plots import plot_id_vs_ood

        plain = [{k: v for k, v in r.items() if k != "config"} for r in rows]
        atomic_write_text(os.path.join(self.out, f"{stem}.md"), to_markdown(plain) + "\n")
        to_csv(plain, path=os.path.join(self.out, f"{stem}.csv"))
        if any(r.get("ood_sets") for r in plain) and any(r.get("id_set") for r in plain):
            name = "id_vs_ood.png" if stem == "results" else f"{stem}_id_vs_ood.png"
            plot_id_vs_ood(plain, os.path.join(self.out, name), title=f"{self.cfg.method.name}")

    def run(self) -> list[dict]:
        self.setup()
        step = 0
        if self.method.trains:
            t0 = time.perf_counter()
            self.train()
            step = self.total_steps()
            log.info("training took %.1f s", time.perf_counter() - t0)
        return self.evaluate(step)


def _dir_bytes(path: str | None) -> int | None:
    if not path or not os.path.isdir(path):
        return None
    return sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path) if f.endswith(".safetensors"))


def mark_alpha_choices(rows: list[dict], default_alpha: float) -> None:
    """Marks the row at the default α (``"default": true``) and, when a hold-out split was evaluated, the α
    with the best hold-out top-1 (``"selected": "holdout"``; ties go to the α nearest the default)."""
    swept = [r for r in rows if r.get("alpha") is not None]
    if not swept:
        return
    for r in swept:
        if abs(r["alpha"] - default_alpha) < 1e-9:
            r["default"] = True
    if all("holdout:top1" in r for r in swept):
        best = max(swept, key=lambda r: (r["holdout:top1"], -abs(r["alpha"] - default_alpha)))
        best["selected"] = "holdout"
