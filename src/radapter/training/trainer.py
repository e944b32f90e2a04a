"""One training loop for every task and method: AdamW, warm-up + cosine, clipping, accumulation, AMP, DDP,
the method's after-step hook (EMA), atomic checkpoints and exact resumption. It knows no task: a task hands it
a dataset keyed by ``(index, epoch, seed)`` and a collate function, a method hands it parameters, a loss on the
collated :class:`~radapter.tasks.base.Batch` and its state.

Reproducibility: one seed drives initialisation (the same on every rank), data order (the
:class:`~radapter.training.sampler.StepSampler`), augmentations and captions (per-item seeds) and adapter
dropping (the global torch RNG, saved in every checkpoint). A run killed at any point and resumed ends exactly
where an uninterrupted run ends; ``metrics.jsonl`` is cut back to the checkpoint's step on resume, so it never
holds a step twice.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.profiler import record_function
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ..config import ConfigError, RunConfig
from .checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .distributed import DistInfo, any_true
from .precision import autocast_dtype
from .sampler import StepSampler
from .schedule import build_scheduler

log = logging.getLogger("radapter")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainData:
    """What the trainer needs of a task: items for ``(index, epoch, seed)`` keys, their count and the collate."""

    dataset: Dataset
    size: int
    collate: Callable[[list], Any]


class TrainStep(nn.Module):
    """The module DDP wraps: ``forward(batch) -> loss`` calls back into the method, and its parameters are the
    model's, the method's extra ones (a linear head) and the task's modules (a segmentation head), so DDP
    averages every gradient."""

    def __init__(self, method) -> None:
        super().__init__()
        self.model = method.model
        self.extra = nn.ParameterDict(method.extra_parameters())
        self.task_modules = nn.ModuleDict(method.task.trainable_modules())
        self._loss = method.train_loss

    def forward(self, batch) -> torch.Tensor:
        return self._loss(batch)


def total_steps(cfg: RunConfig, n_train: int) -> int:
    o = cfg.optim
    if o.steps is not None:
        return o.steps
    return o.epochs * (n_train // o.batch_size)


class Trainer:
    """Trains ``method`` on ``data`` with the run's optimisation settings, checkpointing into ``out``.

    Args:
        cfg: The resolved run configuration (``optim``, ``seed``, checkpoint and logging fields).
        dist: This process's place in the job.
        out: Run folder (``metrics.jsonl``, ``checkpoints/``).
    """

    def __init__(self, cfg: RunConfig, dist: DistInfo, out: str) -> None:
        self.cfg, self.dist, self.out = cfg, dist, out
        self.device = dist.device
        self.autocast = autocast_dtype(cfg.optim.precision, self.device)
        self.train_seconds = 0.0
        self.step = 0

    def _loader(self, data: TrainData, start_step: int, total: int) -> DataLoader:
        o = self.cfg.optim
        micro = o.batch_size // (self.dist.world_size * o.accum_steps)
        if micro * self.dist.world_size * o.accum_steps != o.batch_size:
            raise ConfigError(
                f"optim.batch_size={o.batch_size} must be divisible by processes × accum_steps "
                f"({self.dist.world_size} × {o.accum_steps})"
            )
        sampler = StepSampler(
            data.size, o.batch_size, self.cfg.seed, total, start_step, self.dist.rank, self.dist.world_size
        )
        # a private generator: worker seeds must not consume the global RNG (dropping masks use it)
        gen = torch.Generator().manual_seed(self.cfg.seed)
        return DataLoader(
            data.dataset,
            batch_size=micro,
            sampler=sampler,
            num_workers=self.cfg.data.workers,
            collate_fn=data.collate,
            drop_last=False,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
            generator=gen,
        )

    def _checkpoint(self, method, step: int, optimizer, scheduler, scaler, finished: bool = False) -> None:
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
            method.state_dict(),
            state,
            self.cfg.to_dict(),
            keep=self.cfg.keep,
            permanent=finished or (every > 0 and step % every == 0),
        )

    def _metrics_path(self) -> str:
        return os.path.join(self.out, "metrics.jsonl")

    def _truncate_metrics(self, step: int) -> None:
        """Drops the records after ``step`` that an interrupted run logged before it was stopped."""
        path = self._metrics_path()
        if not (self.dist.is_main and os.path.isfile(path)):
            return
        with open(path, encoding="utf-8") as f:
            lines = [line for line in f if line.strip() and json.loads(line).get("step", 0) <= step]
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(lines)

    def fit(self, method, data: TrainData, resume_from: str | None = None) -> int:
        """Trains to the configured number of steps (from ``resume_from``'s checkpoint if given); returns it."""
        cfg, o = self.cfg, self.cfg.optim
        total = total_steps(cfg, data.size)
        if total <= 0:
            raise ConfigError(
                f"no training steps: {data.size} training items, batch {o.batch_size}, "
                f"{o.epochs} epochs (set optim.steps or a smaller optim.batch_size)"
            )
        optimizer, scheduler, scaler = self.optimizer_parts(method, total)
        step = 0
        if resume_from:
            tensors, state, _ = load_checkpoint(resume_from)
            method.load_state_dict({k: v.to(self.device) for k, v in tensors.items()})
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            if scaler and state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
            set_rng_state(state["rng"])
            step, self.train_seconds = int(state["step"]), float(state.get("train_seconds", 0.0))
            self._truncate_metrics(step)
            log.info("resumed from %s at step %d", resume_from, step)
            if state.get("finished"):
                self.step = step
                return step
        self._run_steps(method, data, optimizer, scheduler, scaler, step, total)
        return self.step

    def optimizer_parts(self, method, total: int):
        """``(optimizer, scheduler, scaler)`` of a run: AdamW over the method's groups, warm-up + cosine over
        ``total`` steps (with the method's per-group starts, LP-FT), a gradient scaler under fp16."""
        o = self.cfg.optim
        optimizer = torch.optim.AdamW(method.param_groups(), lr=o.lr, weight_decay=o.weight_decay)
        scheduler = build_scheduler(optimizer, o.warmup_steps, total, method.group_starts(total))
        scaler = torch.amp.GradScaler("cuda") if self.autocast == torch.float16 else None
        return optimizer, scheduler, scaler

    def optimizer_step(
        self, module, method, batches, optimizer, scheduler, scaler, step: int, on_phase=None
    ) -> tuple[float, torch.Tensor]:
        """One optimizer step: forward and backward of every micro-batch (DDP syncs on the last), the non-finite
        check on every rank, unscaling, clipping, the optimizer and schedule steps and ``method.after_step``.
        ``on_phase("forward" | "backward" | "optimizer")`` is called as each phase starts (benchmarks mark
        memory there); the phases are also profiler ranges. Returns ``(loss, grad_norm)``."""
        o, mark = self.cfg.optim, on_phase or (lambda name: None)
        loss_sum = 0.0
        for micro, batch in enumerate(batches):
            sync = micro == len(batches) - 1 or not self.dist.distributed
            with contextlib.nullcontext() if sync else module.no_sync():
                mark("forward")
                with record_function("radapter:forward"):
                    with torch.autocast(self.device.type, dtype=self.autocast, enabled=self.autocast is not None):
                        loss = module(batch) / len(batches)
                mark("backward")
                with record_function("radapter:backward"):
                    (scaler.scale(loss) if scaler else loss).backward()
            loss_sum += float(loss.detach())
        if any_true(not math.isfinite(loss_sum), self.device):
            raise TrainingDiverged(
                f"loss became {loss_sum} at step {step + 1}; the last good checkpoint is kept "
                f"in {os.path.join(self.out, 'checkpoints')} (lower optim.lr or use fp32)"
            )
        mark("optimizer")
        with record_function("radapter:optimizer"):
            params = [p for g in optimizer.param_groups for p in g["params"]]
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
            method.after_step(step)
        return loss_sum, grad_norm

    def _run_steps(self, method, data: TrainData, optimizer, scheduler, scaler, step: int, total: int) -> None:
        cfg, o = self.cfg, self.cfg.optim
        module = TrainStep(method)
        if self.dist.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            module = torch.nn.parallel.DistributedDataParallel(module, device_ids=ids, broadcast_buffers=False)
        method.model.train()
        writer = self._tensorboard()
        bar = None
        if cfg.progress and self.dist.is_main:
            bar = tqdm(total=total, initial=step, desc=f"train {cfg.method.name}", dynamic_ncols=True)
            bar.set_postfix_str(f"threads={torch.get_num_threads()}")
        steps_per_epoch = max(1, data.size // o.batch_size)
        micro_iter = iter(self._loader(data, step, total))
        t_last = time.perf_counter()
        try:
            while step < total:
                batches = [next(micro_iter).to(self.device) for _ in range(o.accum_steps)]
                loss_sum, grad_norm = self.optimizer_step(module, method, batches, optimizer, scheduler, scaler, step)
                step += 1
                self.step = step
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
                    with open(self._metrics_path(), "a", encoding="utf-8") as f:
                        f.write(json.dumps(record) + "\n")
                    if writer:
                        writer.add_scalar("train/loss", loss_sum, step)
                        writer.add_scalar("train/lr", record["lr"], step)
                    if bar:
                        bar.update(1)
                        bar.set_postfix_str(
                            f"loss={loss_sum:.4f} lr={record['lr']:.2e} threads={torch.get_num_threads()}"
                        )
                    elif step % max(1, cfg.log_every) == 0 or step == total:
                        log.info("step %d/%d loss %.4f lr %.3e", step, total, loss_sum, record["lr"])
                epoch_end = step % steps_per_epoch == 0
                periodic = cfg.checkpoint_every > 0 and step % cfg.checkpoint_every == 0
                if step == total or periodic or (cfg.checkpoint_every == 0 and epoch_end):
                    self._checkpoint(method, step, optimizer, scheduler, scaler, finished=step == total)
                    t_last = time.perf_counter()  # checkpoint I/O is not training time
        finally:
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
