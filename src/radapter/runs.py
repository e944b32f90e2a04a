"""One run: a task, a method and the trainer put together, then every variant evaluated, exported, reported.

This is the application's top layer below the command line (open_clip_train's ``main``): it loads the backbone,
builds the task (data, heads, evaluator) and the method (what trains, variants, export), hands both to the
:class:`~radapter.training.Trainer`, scores each variant with the task's evaluator, writes ``results.jsonl``
(one WiSE-FT-style row per variant), the tables and plot, and the deployable artefacts at the deploy α.

The deploy α has one owner: ``eval.alpha``, or the task's default when it is not set. Merging, verification,
export and model cards all read it from here (:func:`deploy_alpha`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import open_clip
import torch

from .adapters.io import save_classifier
from .backbones import (
    frozen_weights_held,
    hold_frozen_weights,
    restore_frozen_weights,
    set_grad_checkpointing,
)
from .backbones.loading import LoadedModel, load_model
from .config import ConfigError, RunConfig, build_dataclass, load_yaml, save_config, set_dotted
from .data import DataError, scan_images
from .errors import InputFileError
from .methods import Method, get_method
from .reports import to_csv, to_markdown
from .reports.plots import plot_id_vs_ood
from .tasks import Task, get_task
from .training import TrainData, Trainer
from .training.checkpoint import latest_checkpoint, load_checkpoint
from .training.distributed import DistInfo, barrier, init_distributed
from .utils import atomic_write_text
from .utils.perf import choose_threads, use_fast_frozen_linear

log = logging.getLogger("radapter")

TASK_RECORD = "task.json"

# Keys that only change how a run is evaluated, logged or checkpointed — not what it trains. A resumed run may
# change these; anything else would make its record describe a model it did not train.
EVAL_ONLY_KEYS = (
    "out",
    "device",
    "eval",
    "data.eval_sets",
    "data.workers",
    "method.radapter.use_ema",
    "checkpoint_every",
    "keep",
    "log_every",
    "tensorboard",
    "progress",
)


def deploy_alpha(cfg: RunConfig, task: type[Task] | None = None) -> float:
    """The run's deploy α: ``eval.alpha``, else the task's default."""
    if cfg.eval.alpha is not None:
        return float(cfg.eval.alpha)
    return float((task or get_task(cfg.task)).default_alpha)


def resolve_pretrained(name: str, pretrained: str | None) -> str | None:
    """``model.pretrained`` as :func:`radapter.load_model` takes it. ``"default"``: the model's own weights — a
    ``local-dir:``/``hf:`` folder's, nothing for a model-config JSON (random init), and for an open_clip name its
    ``openai`` tag where it has one (else the name's tags are listed in the error)."""
    if pretrained != "default":
        return pretrained
    if name.startswith(("local-dir:", "hf:")) or name.endswith(".json"):
        return None
    tags = [t for m, t in open_clip.list_pretrained() if m == name]
    if "openai" in tags:
        return "openai"
    raise ConfigError(
        f"model.pretrained: {name!r} has no 'openai' weights to default to; name a tag "
        f"({', '.join(tags) or 'none known'}), a checkpoint path, or 'none' for a random initialisation"
    )


def load_backbone(cfg: RunConfig, device: torch.device | str = "cpu") -> LoadedModel:
    """The run's base model, in eval mode. Seeded first, so a randomly initialised base (``pretrained: none``)
    is the same model in every process and every command that reopens the run."""
    torch.manual_seed(cfg.seed)
    backbone = load_model(cfg.model.name, resolve_pretrained(cfg.model.name, cfg.model.pretrained), device)
    backbone.model.eval()
    return backbone


def check_config(cfg: RunConfig) -> tuple[type[Task], type[Method]]:
    """The task and method classes of ``cfg``, after checking they fit together (before anything runs)."""
    task_cls, method_cls = get_task(cfg.task), get_method(cfg.method.name)
    task_cls.check_config(cfg)
    method_cls.check(cfg, task_cls)
    if cfg.optim.frozen_dtype not in ("fp32", "bf16"):
        raise ConfigError(f"optim.frozen_dtype: expected fp32 or bf16, got {cfg.optim.frozen_dtype!r}")
    if cfg.optim.frozen_dtype == "bf16" and cfg.optim.precision == "fp32":
        raise ConfigError(
            "optim.frozen_dtype: bf16 weights need low-precision compute: set optim.precision bf16 (or fp16 on CUDA)"
        )
    return task_cls, method_cls


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out.update(_flat(v, key + ".") if isinstance(v, dict) else {key: v})
    return out


def changed_training_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``"key: old → new"`` for every setting that differs and changes what a run trains."""
    a, b = _flat(old), _flat(new)
    out = []
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key) and not any(key == k or key.startswith(k + ".") for k in EVAL_ONLY_KEYS):
            out.append(f"{key}: {a.get(key)!r} → {b.get(key)!r}")
    return out


def run_config(run_dir: str, overrides: dict[str, Any] | None = None) -> RunConfig:
    """A finished (or interrupted) run's config with evaluation-only overrides applied."""
    path = os.path.join(run_dir, "config.yaml")
    if not os.path.isfile(path):
        raise InputFileError(f"{path}: not a radapter run directory (no config.yaml)")
    data = load_yaml(path)
    saved = build_dataclass(RunConfig, data).to_dict()
    for k, v in (overrides or {}).items():
        set_dotted(data, k, v)
    data["out"] = run_dir
    cfg = build_dataclass(RunConfig, data)
    changed = changed_training_keys(saved, cfg.to_dict())
    if changed:
        raise ConfigError(
            f"{run_dir}: these overrides change what the run trained, so its results would not describe it: "
            + "; ".join(changed)
            + ". Only evaluation settings may change here (eval.*, data.eval_sets, method.radapter.use_ema, …)"
        )
    return cfg


@dataclass
class Parts:
    """What a run is made of once set up."""

    backbone: LoadedModel
    task: Task
    method: Method
    alpha: float


class Run:
    """Sets up, trains, evaluates and exports one configured run.

    Args:
        cfg: The resolved configuration.
        resume: ``"no"`` (a new run; an existing one is an error), ``"yes"`` (continue; no checkpoint is an
            error) or ``"auto"`` (continue if there is a checkpoint, else start).
    """

    def __init__(self, cfg: RunConfig, resume: str = "no") -> None:
        if resume not in ("no", "yes", "auto"):
            raise ValueError(f"resume must be 'no', 'yes' or 'auto', got {resume!r}")
        self.cfg, self.resume = cfg, resume
        self.task_cls, self.method_cls = check_config(cfg)
        use_fast_frozen_linear()  # no result changes; see radapter.utils.perf
        self.threads = choose_threads(cfg.threads)
        log.debug("torch threads: %d", self.threads)
        self.dist: DistInfo = init_distributed(cfg.device)
        self.device = self.dist.device
        self.out = cfg.out
        self.trained_step = 0
        self.train_seconds = 0.0

    # --- set-up ----------------------------------------------------------------------------------------
    def _prepare_out_dir(self) -> str | None:
        ckpt = latest_checkpoint(self.out)
        if ckpt and self.resume == "no":
            raise FileExistsError(
                f"{self.out}: already holds a run (checkpoint {ckpt}); pass --resume to continue it or choose "
                "another --out"
            )
        if self.resume == "yes" and not ckpt:
            raise InputFileError(
                f"{self.out}: nothing to resume (no checkpoint in {os.path.join(self.out, 'checkpoints')}); "
                "drop --resume to start a new run, or use --auto-resume to continue-or-start"
            )
        config_path = os.path.join(self.out, "config.yaml")
        if ckpt and os.path.isfile(config_path):
            saved = build_dataclass(RunConfig, load_yaml(config_path)).to_dict()
            changed = changed_training_keys(saved, self.cfg.to_dict())
            if changed:
                raise ConfigError(
                    f"--resume {self.out}: the run was trained with other settings, and resuming with these "
                    "would make its record describe a model it did not train: "
                    + "; ".join(changed)
                    + ". Resume without them, or start a new run with another --out"
                )
        elif self.dist.is_main:
            os.makedirs(self.out, exist_ok=True)
            save_config(self.cfg, config_path)
        return ckpt

    def setup(self, eval_only: bool = False, backbone: LoadedModel | None = None) -> Parts:
        """Loads the model, the task's data and the method. ``eval_only``: a finished run, its state loaded.
        ``backbone``: use this loaded model instead of loading ``model.name`` (benchmarks reuse one)."""
        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        self.ckpt = latest_checkpoint(self.out) if eval_only else self._prepare_out_dir()
        backbone = backbone or load_backbone(cfg, self.device)
        progress = cfg.progress and self.dist.is_main
        record_path = os.path.join(self.out, TASK_RECORD)
        record = _read_json(record_path) if eval_only and os.path.isfile(record_path) else None
        task = self.task_cls(
            cfg, backbone, self.device, cfg.seed, eval_only=eval_only, progress=progress, record=record
        )
        if not eval_only and self.dist.is_main:
            atomic_write_text(record_path, json.dumps(task.record(), indent=2) + "\n")
        if cfg.data.check_images and not eval_only:
            raise_if_unreadable(task, progress)
        alpha = deploy_alpha(cfg, self.task_cls)
        torch.manual_seed(cfg.seed)  # the same adapter/head initialisation on every rank and every resume
        method = self.method_cls(cfg, backbone, task, alpha)
        self.parts = Parts(backbone, task, method, alpha)
        if not eval_only and method.trains:
            if cfg.optim.grad_checkpointing:
                set_grad_checkpointing(backbone.model, True)
            if cfg.optim.frozen_dtype == "bf16":
                if self.device.type != "cuda":
                    log.warning(
                        "optim.frozen_dtype bf16 on %s: the exact fp32 weights kept for evaluation and merging live in "
                        "the same memory as the bf16 copy, so this saves no memory here (it does on a GPU)",
                        self.device.type,
                    )
                hold_frozen_weights(backbone.model, torch.bfloat16)
        if eval_only and method.trains:
            if self.ckpt is None:
                raise InputFileError(f"{self.out}: no checkpoint to evaluate (train it first)")
            tensors, state, _ = load_checkpoint(self.ckpt)
            method.load_state_dict({k: v.to(self.device) for k, v in tensors.items()})
            self.trained_step = int(state["step"])
            self.train_seconds = float(state.get("train_seconds", 0.0))
            if not state.get("finished"):
                log.warning("%s: evaluating an unfinished run (step %d)", self.out, self.trained_step)
        return self.parts

    # --- training --------------------------------------------------------------------------------------
    def train(self) -> None:
        task, method = self.parts.task, self.parts.method
        trainer = Trainer(self.cfg, self.dist, self.out)
        data = TrainData(task.train_dataset(), task.train_size(), task.collate)
        self.trained_step = trainer.fit(method, data, resume_from=self.ckpt)
        self.train_seconds = trainer.train_seconds
        if frozen_weights_held(method.model):
            restore_frozen_weights(method.model)  # evaluation, merge and export use the exact fp32 weights

    # --- evaluation ------------------------------------------------------------------------------------
    def evaluate(self, alphas: list[float] | None = None, results_name: str = "results.jsonl", export: bool = True):
        """Scores every variant on every eval set (rank 0), writes the rows and reports; returns the rows."""
        cfg, parts = self.cfg, self.parts
        rows: list[dict] = []
        if self.dist.is_main:
            grid = list(cfg.eval.alphas if alphas is None else alphas)
            if export and parts.alpha not in grid:
                grid.append(parts.alpha)  # the deployed model is always evaluated
            t0 = time.perf_counter()
            classifier = None
            for variant in parts.method.variants(sorted(grid)):
                res = parts.task.evaluate(variant.scorer)
                rows.append(self._row(variant.alpha, res))
                if export and variant.alpha in (None, parts.alpha):
                    classifier = parts.task.classifier(variant.scorer)
            log.info("evaluation took %.1f s", time.perf_counter() - t0)
            mark_alpha_choices(rows, parts.alpha, parts.task.metric)
            if export and parts.method.trains:
                exports = parts.method.export(self.out, parts.alpha)
                exports.update(parts.task.export_modules(self.out))
                if classifier and "merged" in exports:
                    save_classifier(exports["merged"], parts.backbone.model, **classifier)
                size = _dir_bytes(exports.get("adapter"))
                for r in rows:
                    r["adapter_bytes"] = size
            for row in rows:
                row["config"] = cfg.to_dict()
            write_rows(rows, self.out, results_name, title=cfg.method.name)
        barrier()
        return rows

    def _row(self, alpha: float | None, results: dict[str, Any]) -> dict[str, Any]:
        parts = self.parts
        return {
            "task": self.cfg.task,
            "metric": parts.task.metric,
            "method": self.cfg.method.name,
            "alpha": alpha,
            "step": self.trained_step,
            "seed": self.cfg.seed,
            "trainable_params": parts.method.trainable_count(),
            "train_seconds": round(self.train_seconds, 3),
            **results,
            **parts.task.summarize(results),
            **parts.method.record(),
        }

    def run(self) -> list[dict]:
        parts = self.setup()
        if parts.method.trains:
            t0 = time.perf_counter()
            self.train()
            log.info("training took %.1f s", time.perf_counter() - t0)
        return self.evaluate()


def evaluate_run(run_dir: str, overrides: dict[str, Any], results_name: str, alphas: list[float] | None = None):
    """Re-evaluates a finished run (other α, other eval sets) without training or exporting."""
    run = Run(run_config(run_dir, overrides))
    run.setup(eval_only=True)
    return run.evaluate(alphas, results_name=results_name, export=False)


def check_images(task: Task, progress: bool = True) -> dict[str, list[tuple[str, str]]]:
    """Decodes every image of every set of ``task``; returns ``{set: [(path, reason), …]}`` of the bad ones."""
    return {
        name: bad for name, ds in task.image_sets().items() if (bad := scan_images(ds, progress=progress, desc=name))
    }


def raise_if_unreadable(task: Task, progress: bool = True) -> None:
    bad = check_images(task, progress)
    if bad:
        lines = [f"  {name}: {path}: {reason}" for name, items in bad.items() for path, reason in items[:20]]
        total = sum(len(v) for v in bad.values())
        raise DataError(f"{total} unreadable image(s) (data.check_images):\n" + "\n".join(lines))


def _read_json(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise InputFileError(f"{path}: not valid JSON ({e})") from e


def write_rows(rows: list[dict], out: str, results_name: str, title: str = "") -> None:
    """``<stem>.jsonl`` (machines), ``<stem>.md`` / ``.csv`` (people) and the ID-vs-OOD plot."""
    stem = os.path.splitext(results_name)[0]
    atomic_write_text(os.path.join(out, results_name), "".join(json.dumps(r) + "\n" for r in rows))
    plain = [{k: v for k, v in r.items() if k != "config"} for r in rows]
    atomic_write_text(os.path.join(out, f"{stem}.md"), to_markdown(plain) + "\n")
    to_csv(plain, path=os.path.join(out, f"{stem}.csv"))
    if any(r.get("ood_sets") for r in plain) and any(r.get("id_set") for r in plain):
        name = "id_vs_ood.png" if stem == "results" else f"{stem}_id_vs_ood.png"
        plot_id_vs_ood(plain, os.path.join(out, name), title=title)


def _dir_bytes(path: str | None) -> int | None:
    if not path or not os.path.isdir(path):
        return None
    return sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path) if f.endswith(".safetensors"))


def mark_alpha_choices(rows: list[dict], default_alpha: float, metric: str = "top1") -> None:
    """Marks the row at the deploy α (``"default": true``) and, when a hold-out split was evaluated, the α
    with the best hold-out score (``"selected": "holdout"``; ties go to the α nearest the deploy α)."""
    swept = [r for r in rows if r.get("alpha") is not None]
    if not swept:
        return
    for r in swept:
        if abs(r["alpha"] - default_alpha) < 1e-9:
            r["default"] = True
    key = f"holdout:{metric}"
    if all(key in r for r in swept):
        best = max(swept, key=lambda r: (r[key], -abs(r["alpha"] - default_alpha)))
        best["selected"] = "holdout"
