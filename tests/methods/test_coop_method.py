"""CoOp as a method: it trains the context only, through the shared trainer; every eval set's classes (novel ones
included) are scored with the learned context; the context is exported, reloadable and re-evaluated from the
checkpoint; tasks without labels are refused."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
from fewshot_trees import train_args, write_coop_root, write_model_json  # noqa: E402

from conftest import tiny_train_args  # noqa: E402
from radapter.cli.main import main  # noqa: E402
from radapter.config import load_config  # noqa: E402
from radapter.evaluation.classify import evaluate_classifier  # noqa: E402
from radapter.prompting.coop import CoOpPromptLearner  # noqa: E402
from radapter.runs import Run, load_backbone, run_config  # noqa: E402
from radapter.tasks import CAPTIONS, Batch, Scorer, Task, register_task  # noqa: E402
from radapter.zeroshot import build_zero_shot_head  # noqa: E402

DTD_NAMES = ["banded", "blotchy", "braided", "bubbly", "bumpy"]


@pytest.fixture
def coop_root(tmp_path):
    return write_coop_root(tmp_path / "data")


@pytest.fixture
def model_json(tmp_path):
    return write_model_json(tmp_path / "tiny-coop.json")


def _run(model_json, root, out, **extra) -> Run:
    overrides = {
        "task": "base2new",
        "model.name": model_json,
        "method.name": "coop",
        "out": str(out),
        "data.kind": "coop",
        "data.coop.dataset": "dtd",
        "data.coop.root": str(root),
        "data.coop.shots": 4,
        **extra,
    }
    return Run(load_config("tiny_test", overrides))


def test_coop_trains_the_context_only_and_scores_novel_classes_with_it(model_json, coop_root, tmp_path):
    out = tmp_path / "coop"
    run = _run(model_json, coop_root, out, **{"optim.lr": 0.05, "optim.steps": 12})
    parts = run.setup()
    method = parts.method
    assert method.trainable_count() == 16 * 32  # M = 16 context vectors of the text width
    assert [n for n, p in method.model.named_parameters() if p.requires_grad] == []
    ctx0 = method.learner.ctx.detach().clone()
    task = parts.task
    batch = task.collate([task.train_dataset()[(i, 0, i)] for i in range(task.train_size())])
    with torch.no_grad():
        loss0 = float(method.loss(batch))
    run.train()
    rows = run.evaluate()
    with torch.no_grad():
        loss1 = float(method.loss(batch))
    assert loss1 < loss0 - 1e-3, (loss0, loss1)
    assert not torch.allclose(method.learner.ctx, ctx0)
    fresh = load_backbone(run.cfg).model.state_dict()
    assert all(torch.equal(v, fresh[k]) for k, v in method.model.state_dict().items()), "a frozen weight moved"

    # the novel set is scored with the learned context and the novel class names
    (row,) = rows
    assert row["method"] == "coop" and row["alpha"] is None and row["n_ctx"] == 16
    with torch.no_grad():
        novel_head = method.learner.class_features(DTD_NAMES[3:])
    novel = next(es for es in task.eval_sets if es.name == "novel")
    ref = evaluate_classifier(method.model, [novel], head=novel_head)
    assert row["novel:top1"] == pytest.approx(ref["novel:top1"])

    # exported like an adapter, reloaded on a fresh base model to the same class features
    meta = json.loads((out / "coop" / "coop_config.json").read_text())
    assert meta["method"] == "coop" and meta["n_ctx"] == 16 and row["adapter_bytes"] > 0
    base = load_backbone(run.cfg)
    loaded = CoOpPromptLearner.load(out / "coop", base.model, base.tokenizer)
    with torch.no_grad():
        assert (loaded.class_features(DTD_NAMES) - method.learner.class_features(DTD_NAMES)).abs().max() < 1e-6

    # and a finished run re-evaluates from its checkpoint to the same numbers
    assert main(["eval", "--run", str(out)]) == 0
    again = json.loads((out / "eval.jsonl").read_text().splitlines()[0])
    assert (again["base:top1"], again["novel:top1"]) == (row["base:top1"], row["novel:top1"])


def test_coop_on_the_classification_task_uses_its_class_head(tiny_folders, tmp_path):
    model_json = write_model_json(tmp_path / "tiny-coop.json")
    out = tmp_path / "cls"
    extra = ("--method.coop.init", "a photo of a", "--optim.lr", "0.05", "--optim.steps", "8")
    assert main(tiny_train_args(model_json, tiny_folders, out, "coop", *extra)) == 0
    (row,) = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert row["n_ctx"] == 4 and row["ctx_init"] == "a photo of a"
    run = Run(run_config(str(out)))
    parts = run.setup(eval_only=True)
    names, templates = parts.task.classnames, parts.task.templates
    with torch.no_grad():
        learned = parts.method.learner.class_features(names)
        zero_shot = build_zero_shot_head(parts.method.model, parts.backbone.tokenizer, names, templates)
    assert (learned - zero_shot).abs().max() > 1e-3, "the test could not tell the two heads apart"
    ref = evaluate_classifier(parts.method.model, parts.task.eval_sets, head=learned)
    assert all(row[k] == pytest.approx(v) for k, v in ref.items())


def test_scorer_head_over_prefers_the_fixed_head_for_training_classes():
    calls = []
    fixed = torch.eye(2)
    scorer = Scorer(torch.nn.Linear(1, 1), head=fixed, class_head=lambda n, t: calls.append(n) or torch.ones(len(n), 2))
    assert scorer.head_over(["a", "b"], ["{}"], training=["a", "b"]) is fixed
    assert scorer.head_over(["a", "b"], ["{}"]) is fixed
    assert scorer.head_over(["c"], ["{}"], training=["a", "b"]).shape == (1, 2) and calls == [["c"]]
    assert Scorer(torch.nn.Linear(1, 1)).head_over(["c"], ["{}"]) is None


def test_coop_works_on_a_hugging_face_text_tower(tiny_hf_dir, coop_root, tmp_path):
    out = tmp_path / "hf"
    args = train_args("x", coop_root, out, "coop", "--method.coop.n_ctx", "2", "--optim.lr", "0.05")
    args[args.index("--model") + 1] = f"hf:{tiny_hf_dir}"
    assert main(args) == 0
    (row,) = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert row["n_ctx"] == 2 and 0 <= row["novel:top1"] <= 100
    assert json.loads((out / "coop" / "coop_config.json").read_text())["library"] == "transformers"


def test_a_context_that_does_not_fit_the_text_tower_is_one_error(tiny_open_clip_json, coop_root, tmp_path, capsys):
    # the shared tiny model has a 16-token context: 16 context tokens leave no room for a class name
    assert main(train_args(tiny_open_clip_json, coop_root, tmp_path / "o", "coop")) == 2
    err = capsys.readouterr().err
    assert "method.coop (n_ctx=None" in err and "context length" in err


@register_task
class _CaptionsOnly(Task):
    key = "toy-captions-only"
    provides = frozenset({CAPTIONS})

    def train_size(self) -> int:
        return 1

    def collate(self, items) -> Batch:
        raise AssertionError("never trained")


def test_coop_refuses_a_task_without_labels(tiny_open_clip_json, tmp_path, capsys):
    out = tmp_path / "x"
    args = ["train", "--config", "tiny_test", "--task", "toy-captions-only", "--model", tiny_open_clip_json]
    assert main([*args, "--method", "coop", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "method 'coop' cannot train task 'toy-captions-only': it needs class_head, labels" in err
    assert not out.exists()
