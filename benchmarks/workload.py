"""Benchmark workloads built by the library, the way ``radapter train`` builds them.

Nothing here re-implements a method. A workload is:

* a ``RunConfig`` from ``radapter.config.load_config(None, overrides)`` (the method, model, batch size,
  precision, ``optim.grad_checkpointing``, ``optim.frozen_dtype`` are config keys, as a user sets them);
* the backbone from ``radapter.runs.load_backbone`` (random init, ``model.pretrained: none``: a step costs the
  same as with real weights);
* :class:`BenchTask`, a small in-memory task (random images, class captions, pairs of samples per class) that
  provides what every method needs (labels, captions, groups, a class head);
* the method class from the registry (``flyp``, ``ft``, ``radapter``, ``lora``), set up by
  ``radapter.runs.Run.setup`` itself (checkpointing, bf16 frozen weights);
* the optimizer, schedule and gradient scaler of ``radapter.training.Trainer.optimizer_parts`` and its
  ``optimizer_step`` (:meth:`Workload.step`: one step of the trainer's loop without the data loader, logging
  and checkpoints).

Benchmark names map to methods through :data:`METHODS` (``full_ft`` is FLYP: every weight of both towers).
"""

from __future__ import annotations

import json
import os
import tempfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from radapter.runs import Run
from radapter.tasks.base import Batch, Task, register_task
from radapter.training import Trainer, TrainStep, total_steps

#: The --smoke model: a 2-block, 32-px open_clip CLIP (same shape as tests/conftest.py).
TINY_CFG: dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 48, "patch_size": 8, "head_width": 24},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}
#: Benchmark name -> the config overrides that select the library's method.
METHODS: dict[str, dict[str, Any]] = {
    "full_ft": {"method.name": "flyp"},  # every weight of both towers, CLIP loss (the paper's full fine-tuning)
    "ft": {"method.name": "ft"},  # image tower + linear head, cross-entropy (WiSE-FT's fine-tuning)
    "radapter": {"method.name": "radapter"},  # full rank, the paper's defaults
    "radapter_r64": {"method.name": "radapter", "method.radapter.rank": 64},
    "lora": {"method.name": "lora"},  # peft LoRA r = 8 on the handler's lora_targets, MPM-NCE
}
DEFAULT_METHODS = ("full_ft", "radapter", "radapter_r64", "lora")


def tiny_model_spec() -> str:
    """Path of the tiny model's config JSON (written once per machine; ``radapter.load_model`` builds it)."""
    path = os.path.join(tempfile.gettempdir(), "radapter-bench-tiny.json")
    text = json.dumps(TINY_CFG)
    if not os.path.isfile(path) or open(path, encoding="utf-8").read() != text:
        tmp = f"{path}.{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    return path


def model_config(model: str = "ViT-B-16", smoke: bool = False) -> dict[str, Any]:
    """The open_clip model config of ``model`` (the tiny one with ``smoke``)."""
    if smoke:
        return json.loads(json.dumps(TINY_CFG))
    import open_clip

    return open_clip.get_model_config(model)


def run_config(
    method: str,
    *,
    model: str = "ViT-B-16",
    smoke: bool = False,
    batch: int = 8,
    device: str = "cpu",
    amp: str | None = None,
    grad_checkpointing: bool = False,
    frozen_dtype: str = "fp32",
    extra: dict[str, Any] | None = None,
):
    """The ``RunConfig`` a user would write for this measurement (AdamW lr 1e-5, no weight decay, clip 1.0)."""
    from radapter.config import load_config

    if method not in METHODS:
        raise ValueError(f"unknown benchmark method {method!r}; one of {', '.join(METHODS)}")
    overrides = {
        "task": BenchTask.key,
        "out": tempfile.mkdtemp(prefix="radapter-bench-"),
        "threads": torch.get_num_threads(),
        "model.name": tiny_model_spec() if smoke else model,
        "model.pretrained": "none",
        "device": device,
        "optim.batch_size": batch,
        "optim.steps": 1000,
        "optim.warmup_steps": 10,
        "optim.lr": 1e-5,
        "optim.weight_decay": 0.0,
        "optim.grad_clip": 1.0,
        "optim.precision": amp or "fp32",
        "optim.grad_checkpointing": grad_checkpointing,
        "optim.frozen_dtype": frozen_dtype,
        "data.workers": 0,
        "progress": False,
        **METHODS[method],
        **(extra or {}),
    }
    return load_config(None, overrides)


class OfflineTokenizer:
    """Words -> fixed ids (crc32), padded to the context length, last position = the highest id. For models
    whose real tokenizer would be downloaded from the Hub (SigLIP's); the text tower's cost does not depend on
    the ids. Benchmarks only."""

    def __init__(self, context_length: int, vocab_size: int) -> None:
        self.context_length, self.vocab_size = context_length, vocab_size

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        out = torch.zeros(len(texts), self.context_length, dtype=torch.long)
        for i, text in enumerate(texts):
            ids = [1 + zlib.crc32(w.encode()) % (self.vocab_size - 2) for w in text.split()]
            ids = ids[: self.context_length - 1] + [self.vocab_size - 1]
            out[i, : len(ids)] = torch.tensor(ids)
        return out


def load_backbone(cfg):
    """``radapter.runs.load_backbone``; for open_clip configs whose tokenizer lives on the Hub (SigLIP), the same
    model built by open_clip with an :class:`OfflineTokenizer`, so nothing is downloaded."""
    import open_clip

    from radapter.backbones.loading import LoadedModel, resolve_open_clip
    from radapter.runs import load_backbone as library_load

    spec = cfg.model.name
    text_cfg = (open_clip.get_model_config(spec) or {}).get("text_cfg", {}) if not spec.endswith(".json") else {}
    if not text_cfg.get("hf_tokenizer_name"):
        return library_load(cfg, cfg.device)
    torch.manual_seed(cfg.seed)
    name, model_cfg, _, kwargs = resolve_open_clip(spec, None)
    model = open_clip.create_model(name, pretrained=None, device=cfg.device, **kwargs).eval()
    pp = dict(model.visual.preprocess_cfg)
    info = {"library": "open_clip", "name": spec, "pretrained": None, "model_cfg": model_cfg, "preprocess_cfg": pp}
    model.radapter_base_info = info
    tok = OfflineTokenizer(text_cfg["context_length"], text_cfg["vocab_size"])
    return LoadedModel(model, tok, int(pp["size"][0]), tuple(pp["mean"]), tuple(pp["std"]), info)


class _Items(torch.utils.data.Dataset):
    """Item ``(index, epoch, seed)`` -> (image, label, caption). Consecutive indices pair up in one class, so a
    batch holds pairs of MPM-NCE positives; every image is drawn from a generator seeded by its key."""

    def __init__(self, n: int, image_size: int, classnames: list[str]) -> None:
        self.n, self.size, self.classnames = n, image_size, classnames

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, key):
        index, epoch, seed = key if isinstance(key, tuple) else (key, 0, 0)
        g = torch.Generator().manual_seed((int(index) * 1_000_003 + int(epoch) * 7_919 + int(seed)) % 2**31)
        label = (int(index) // 2) % len(self.classnames)
        image = torch.randn(3, self.size, self.size, generator=g)
        return image, label, f"a photo of a {self.classnames[label]}."


@register_task
class BenchTask(Task):
    """Random images with class captions: provides labels, captions, groups (= labels) and a zero-shot head of
    ``batch/2`` classes (each batch holds two samples per class). No evaluation: benchmarks train only."""

    key = "benchmark"
    provides = frozenset({"labels", "captions", "groups", "class_head"})
    description = "random images and class captions, in memory (benchmarks)"

    def setup(self) -> None:
        n_classes = max(1, self.cfg.optim.batch_size // 2)
        self._classnames = [f"object {i}" for i in range(n_classes)]
        self.items = _Items(self.cfg.optim.batch_size * 4, self.backbone.image_size, self._classnames)

    @property
    def classnames(self) -> list[str]:
        return self._classnames

    def train_size(self) -> int:
        return len(self.items)

    def train_dataset(self):
        return self.items

    def collate(self, items):
        images, labels, captions = zip(*items)
        labels = torch.tensor(labels, dtype=torch.long)
        return Batch(images=torch.stack(images), labels=labels, groups=labels, texts=list(captions))

    def batch(self, step: int = 0):
        """The training batch of ``step`` (``optim.batch_size`` items), on the task's device."""
        b = self.cfg.optim.batch_size
        return self.collate([self.items[(i, step, self.seed)] for i in range(b)]).to(self.device)

    def images(self, n: int, seed: int = 0) -> torch.Tensor:
        """[n, 3, S, S] images of the training set's kind, on the task's device."""
        return torch.stack([self.items[(i, 0, seed)][0] for i in range(n)]).to(self.device)

    def captions(self, n: int) -> list[str]:
        """``n`` captions of the training set's kind."""
        return [self.items[(i, 0, 0)][2] for i in range(n)]

    def zero_shot_head(self) -> torch.Tensor:
        if not hasattr(self, "_head"):
            from radapter.zeroshot import build_zero_shot_head

            self._head = build_zero_shot_head(
                self.backbone.model, self.backbone.tokenizer, self._classnames, ["a photo of a {}."], self.device
            )
        return self._head


@dataclass
class Workload:
    """A method ready to train, with the trainer's optimizer, schedule and scaler (see the module docstring)."""

    cfg: Any
    backbone: Any
    task: Any
    method: Any
    trainer: Any
    module: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: Any
    steps_done: int = 0
    #: Called with "forward", "backward", "optimizer" at the start of each phase (CUDA memory marks).
    on_phase: Callable[[str], None] | None = None

    @property
    def model(self) -> torch.nn.Module:
        return self.method.model

    @property
    def device(self) -> torch.device:
        return self.trainer.device

    @property
    def autocast(self) -> torch.dtype | None:
        return self.trainer.autocast

    def trainable_params(self) -> int:
        return self.method.trainable_count()

    def step(self, batch) -> float:
        """One optimizer step of the trainer (``Trainer.optimizer_step``: autocast forward of the method's loss,
        backward, clipping, optimizer and schedule steps, ``method.after_step``). Phases are profiler ranges
        ``radapter:forward`` … and are reported to :attr:`on_phase`."""
        loss, _ = self.trainer.optimizer_step(
            self.module,
            self.method,
            [batch],
            self.optimizer,
            self.scheduler,
            self.scaler,
            self.steps_done,
            self.on_phase,
        )
        self.steps_done += 1
        return loss


def build(cfg, backbone=None) -> Workload:
    """Builds the workload of ``cfg`` with ``radapter.runs.Run`` and the trainer's optimizer (``backbone``:
    reuse one instead of loading ``cfg.model``)."""
    run = Run(cfg)
    parts = run.setup(backbone=backbone)
    trainer = Trainer(cfg, run.dist, cfg.out)
    total = total_steps(cfg, parts.task.train_size())
    optimizer, scheduler, scaler = trainer.optimizer_parts(parts.method, total)
    parts.method.model.train()
    module = TrainStep(parts.method)
    return Workload(cfg, parts.backbone, parts.task, parts.method, trainer, module, optimizer, scheduler, scaler)
