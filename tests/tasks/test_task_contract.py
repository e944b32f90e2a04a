"""A new task is one module: this file registers a small image–caption task without touching the trainer or
any method, trains R-Adapter on it through the CLI, and checks that methods which cannot serve it are refused
at config time."""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.data import Dataset

from radapter.backbones import encode_image, encode_text
from radapter.cli.main import main
from radapter.tasks import CAPTIONS, GROUPS, TASK_LOSS, Batch, Scorer, Task, register_task

WORDS = ["red", "green", "blue", "round", "square", "small"]


class _Pairs(Dataset):
    """Item ``(index, epoch, seed)`` → (image, caption, group): image k is a fixed random tensor, its caption a
    fixed phrase; the group is the image index (its captions are its positives)."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.images = torch.randn(n, 3, 32, 32, generator=g)
        self.captions = [f"a {WORDS[i % 6]} {WORDS[(i // 6) % 6]} thing" for i in range(n)]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key):
        index = key[0] if isinstance(key, tuple) else key
        return self.images[index], self.captions[index], index


@register_task
class ToyPairsTask(Task):
    key = "toy-pairs"
    default_alpha = 0.8
    provides = frozenset({CAPTIONS, GROUPS})
    metric = "R@1"

    def setup(self) -> None:
        self.train_set = _Pairs(16, self.seed)
        self.test_set = _Pairs(8, self.seed + 1)

    def train_size(self) -> int:
        return len(self.train_set)

    def train_dataset(self):
        return self.train_set

    def collate(self, items):
        images, captions, groups = zip(*items)
        return Batch(images=torch.stack(images), groups=torch.tensor(groups), texts=list(captions))

    @torch.no_grad()
    def evaluate(self, scorer: Scorer):
        f = encode_image(scorer.model, self.test_set.images, normalize=True)
        g = encode_text(scorer.model, self.backbone.tokenizer(self.test_set.captions), normalize=True)
        hits = (f @ g.t()).argmax(dim=1) == torch.arange(len(f))
        return {"test:R@1": 100.0 * hits.float().mean().item()}

    def summarize(self, results):
        return {"id_set": "test", "ood_sets": []}


def _args(tiny_open_clip_json, out, method, *extra):
    return [
        "train",
        "--config",
        "tiny_test",
        "--task",
        "toy-pairs",
        "--model",
        tiny_open_clip_json,
        "--method",
        method,
        "--out",
        str(out),
        *extra,
    ]


def test_a_task_registered_from_the_tests_trains_and_evaluates(tiny_open_clip_json, tmp_path):
    out = tmp_path / "ra"
    assert main(_args(tiny_open_clip_json, out, "radapter", "--optim.lr", "0.05")) == 0
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["alpha"] for r in rows] == [0.0, 0.5, 0.8, 1.0]  # the grid plus the task's deploy α
    assert all(r["task"] == "toy-pairs" and 0 <= r["test:R@1"] <= 100 for r in rows)
    assert [r["alpha"] for r in rows if r.get("default")] == [0.8]
    merge = json.loads((out / "merged" / "radapter_merge.json").read_text())
    assert merge["alpha"] == 0.8 and merge["use_ema"] is True
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 4


@pytest.mark.parametrize(
    ("method", "extra", "needs"),
    [
        ("ft", [], "class_head, labels"),
        ("lpft", [], "class_head, labels"),
        ("radapter", ["--method.radapter.loss", "ce", "--method.radapter.towers", "image"], "class_head, labels"),
        ("lora", ["--method.lora.loss", "ce"], "class_head, labels"),
    ],
)
def test_methods_that_cannot_serve_the_task_fail_at_config_time(
    method, extra, needs, tiny_open_clip_json, tmp_path, capsys
):
    out = tmp_path / method
    assert main(_args(tiny_open_clip_json, out, method, *extra)) == 2
    err = capsys.readouterr().err
    assert f"cannot train task 'toy-pairs': it needs {needs}" in err
    able = err.split("methods for toy-pairs (with their default loss):")[1]
    assert "radapter" in able and "flyp" in able and "ft" not in able.replace("lpft", "")
    assert not out.exists(), "nothing may be written for a refused combination"


class _Targets(Dataset):
    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.images = torch.randn(n, 3, 32, 32, generator=g)
        self.targets = torch.randn(n, 4, generator=g)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key):
        i = key[0] if isinstance(key, tuple) else key
        return self.images[i], self.targets[i]


@register_task
class ToyDenseTask(Task):
    """A task that computes its own loss with a head it owns (as segmentation does): a regression of 4 numbers
    from the image embedding."""

    key = "toy-dense"
    provides = frozenset({TASK_LOSS})
    metric = "score"

    def setup(self) -> None:
        self.data = _Targets(16, self.seed)
        torch.manual_seed(self.seed)
        self.head = torch.nn.Linear(32, 4)

    def trainable_modules(self):
        return {"head": self.head}

    def loss(self, model, batch):
        f = encode_image(model, batch.images, normalize=True)
        return torch.nn.functional.mse_loss(self.head(f), batch.extra["targets"])

    def export_modules(self, directory):
        from radapter.utils import atomic_save_safetensors

        path = f"{directory}/head.safetensors"
        atomic_save_safetensors(self.head.state_dict(), path)
        return {"head": path}

    def train_size(self):
        return len(self.data)

    def train_dataset(self):
        return self.data

    def collate(self, items):
        images, targets = zip(*items)
        return Batch(images=torch.stack(images), extra={"targets": torch.stack(targets)})

    @torch.no_grad()
    def evaluate(self, scorer):
        f = encode_image(scorer.model, self.data.images, normalize=True)
        return {"train:score": -float(torch.nn.functional.mse_loss(self.head(f), self.data.targets))}


def test_a_task_with_its_own_loss_trains_its_head_with_the_methods_parameters(tiny_open_clip_json, tmp_path, capsys):
    from radapter.utils import load_safetensors

    out = tmp_path / "dense"
    args = ["train", "--config", "tiny_test", "--task", "toy-dense", "--model", tiny_open_clip_json, "--out", str(out)]
    assert main([*args, "--method", "radapter", "--optim.lr", "0.05", "--checkpoint_every", "2"]) == 0
    head = load_safetensors(str(out / "head.safetensors"))
    torch.manual_seed(0)
    initial = torch.nn.Linear(32, 4).state_dict()
    assert not torch.equal(head["weight"], initial["weight"]), "the task's head trained"
    adapters = load_safetensors(str(out / "adapter" / "adapter_model.safetensors"))
    assert any(v.abs().sum() > 0 for k, v in adapters.items() if k.endswith(".weight"))
    ckpt = load_safetensors(str(out / "checkpoints" / "step_0000004" / "model.safetensors"))
    assert torch.equal(ckpt["task.head.weight"], head["weight"])
    # methods with a loss of their own cannot serve it
    assert main([*args[:-1], str(tmp_path / "ft"), "--method", "flyp"]) == 2
    assert "computes its own loss" in capsys.readouterr().err
