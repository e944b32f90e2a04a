"""The base2new and cross_dataset tasks on fake CoOp trees: one head per evaluation set (checked against a
reference written out here), HM, the few-shot cache written next to the run and reused, the class lists, the
cross-dataset rows, and the configurations the tasks refuse."""

from __future__ import annotations

import json

import pytest
import torch
from fewshot_trees import split_file, train_args, write_coop_root, write_model_json
from torch.nn import functional as F

from radapter.backbones import encode_image
from radapter.cli.main import main
from radapter.config import ConfigError, load_config
from radapter.data import load_image
from radapter.data.transforms import eval_transform
from radapter.runs import check_config, load_backbone
from radapter.tasks import Batch, Scorer, get_task
from radapter.zeroshot import build_zero_shot_head

DTD_NAMES = ["banded", "blotchy", "braided", "bubbly", "bumpy"]
DTD_TEMPLATE = ["{} texture."]


@pytest.fixture
def coop_root(tmp_path):
    return write_coop_root(tmp_path / "data")


@pytest.fixture
def model_json(tmp_path):
    return write_model_json(tmp_path / "tiny-coop.json")


def _cfg(model_json, root, out, task="base2new", **extra):
    overrides = {
        "task": task,
        "model.name": model_json,
        "out": str(out),
        "data.kind": "coop",
        "data.coop.dataset": "dtd",
        "data.coop.root": str(root),
        "data.coop.shots": 4,
        **extra,
    }
    return load_config("tiny_test", overrides)


def _task(cfg):
    backbone = load_backbone(cfg)
    return get_task(cfg.task)(cfg, backbone, torch.device("cpu"), cfg.seed, progress=False), backbone


@torch.no_grad()
def _reference_top1(model, root, items, head, label_offset=0) -> float:
    """Top-1 (%) of ``head`` on the listed test items, computed image by image with the model's eval transform."""
    tf = eval_transform(32)
    image_root = root / "dtd" / "images"
    hits = 0
    for rel, label, _name in items:
        f = encode_image(model, tf(load_image(image_root / rel))[None], normalize=True)
        hits += int((f @ F.normalize(head, dim=-1).t()).argmax()) == label - label_offset
    return 100.0 * hits / len(items)


def test_base_and_novel_are_scored_with_their_own_heads(model_json, coop_root, tmp_path):
    cfg = _cfg(model_json, coop_root, tmp_path / "run")
    task, backbone = _task(cfg)
    model = backbone.model
    assert task.classnames == DTD_NAMES[:3]
    assert [(es.name, es.classnames, es.ood) for es in task.eval_sets] == [
        ("base", DTD_NAMES[:3], False),
        ("novel", DTD_NAMES[3:], True),
    ]
    test = split_file(coop_root, "dtd")["test"]
    base_items, novel_items = [t for t in test if t[1] < 3], [t for t in test if t[1] >= 3]

    # a fixed head over the training classes that predicts class 0 for every base image (checked below)
    with torch.no_grad():
        feats = torch.cat(
            [
                encode_image(model, eval_transform(32)(load_image(p))[None], normalize=True)
                for p in (coop_root / "dtd" / "images" / t[0] for t in base_items)
            ]
        )
    r0 = F.normalize(feats.sum(0), dim=0)
    assert (feats @ r0 > 0).all(), "precondition: every base image leans towards r0"
    head = torch.stack([r0, -r0, -r0])
    res = task.evaluate(Scorer(model, head=head))
    assert res["base:top1"] == pytest.approx(100 / 3)  # a third of the base test images are class 0
    assert res["base:top1"] == pytest.approx(_reference_top1(model, coop_root, base_items, head))
    # FT's head does not cover the novel classes: they get the zero-shot head of the model's own text tower
    zs_novel = build_zero_shot_head(model, backbone.tokenizer, DTD_NAMES[3:], DTD_TEMPLATE)
    assert res["novel:top1"] == pytest.approx(_reference_top1(model, coop_root, novel_items, zs_novel, 3))
    zs_base = build_zero_shot_head(model, backbone.tokenizer, DTD_NAMES[:3], DTD_TEMPLATE)
    plain = task.evaluate(Scorer(model))
    assert plain["base:top1"] == pytest.approx(_reference_top1(model, coop_root, base_items, zs_base))
    assert plain["novel:top1"] == res["novel:top1"]

    # a class_head (CoOp) is asked for each set's classes with that set's templates
    calls = []

    def class_head(names, templates):
        calls.append((names, templates))
        return build_zero_shot_head(model, backbone.tokenizer, names[::-1], templates)  # a wrong-order head

    wrong = task.evaluate(Scorer(model, class_head=class_head))
    assert calls == [(DTD_NAMES[:3], DTD_TEMPLATE), (DTD_NAMES[3:], DTD_TEMPLATE)]
    reversed_novel = build_zero_shot_head(model, backbone.tokenizer, DTD_NAMES[3:][::-1], DTD_TEMPLATE)
    assert wrong["novel:top1"] == pytest.approx(_reference_top1(model, coop_root, novel_items, reversed_novel, 3))

    row = task.summarize(res)
    b, n = res["base:top1"], res["novel:top1"]
    assert row["id_set"] == "base" and row["ood_sets"] == ["novel"] and row["avg_ood:top1"] == n
    assert row["HM:top1"] == pytest.approx(2 * b * n / (b + n))
    assert row["dataset"] == "dtd" and row["shots"] == 4


def test_training_batches_pair_base_images_with_templates(model_json, coop_root, tmp_path):
    cfg = _cfg(model_json, coop_root, tmp_path / "run")
    task, _ = _task(cfg)
    assert task.train_size() == 3 * 4  # 4 shots of each of the 3 base classes
    items = [task.train_dataset()[(i, 0, 100 + i)] for i in range(task.train_size())]
    batch = task.collate(items)
    assert isinstance(batch, Batch) and batch.images.shape == (12, 3, 32, 32)
    assert sorted(batch.labels.tolist()) == sorted([0, 1, 2] * 4) and torch.equal(batch.labels, batch.groups)
    assert batch.texts == [f"{DTD_NAMES[label]} texture." for label in batch.labels.tolist()]


def test_few_shot_cache_is_written_next_to_the_run_and_reused(model_json, coop_root, tmp_path):
    out = tmp_path / "run"
    task, _ = _task(_cfg(model_json, coop_root, out))
    cache = out / "fewshot_dtd_4shot_seed0.json"
    assert task.cache_path == str(cache) and not task.cache_reused
    drawn = json.loads(cache.read_text())
    # drawn over all 5 classes (sampling comes before the cut), the task trains on the base ones
    assert sorted({label for _p, label, _n in drawn["train"]}) == [0, 1, 2, 3, 4] and len(drawn["train"]) == 20
    image_root = coop_root / "dtd" / "images"
    base_drawn = [str(image_root / p) for p, label, _n in drawn["train"] if label < 3]
    assert sorted(task._train.paths) == sorted(base_drawn)
    # the class lists of each half
    assert (out / "base_classes.txt").read_text().split("\n")[:3] == DTD_NAMES[:3]
    assert (out / "novel_classes.txt").read_text().split() == DTD_NAMES[3:]
    split = json.loads((out / "class_split.json").read_text())
    assert [c["original_label"] for c in split["novel"]] == [3, 4] and split["novel"][0]["label"] == 0

    # swap one drawn image for one not drawn: a second task must read the file, not draw again
    train = split_file(coop_root, "dtd")["train"]
    old = drawn["train"][0]
    new = next(t for t in train if t[1] == old[1] and t not in drawn["train"])
    drawn["train"][0] = new
    cache.write_text(json.dumps(drawn))
    again, _ = _task(_cfg(model_json, coop_root, out))
    assert again.cache_reused
    assert str(image_root / new[0]) in again._train.paths and str(image_root / old[0]) not in again._train.paths

    # the same seed of the all-class protocol trains on exactly these images plus the novel classes' ones
    xd, _ = _task(_cfg(model_json, coop_root, tmp_path / "xd", task="cross_dataset"))
    assert len(xd._train) == 20
    assert sorted(p for p, label in xd._train.samples if label < 3) == sorted(base_drawn)


def test_a_stale_cache_is_an_error_naming_it(model_json, coop_root, tmp_path, capsys):
    out = tmp_path / "run"
    _task(_cfg(model_json, coop_root, out))
    cache = out / "fewshot_dtd_4shot_seed0.json"
    drawn = json.loads(cache.read_text())
    drawn["train"][0][0] = "banded/missing.jpg"
    cache.write_text(json.dumps(drawn))
    assert (
        main(train_args(model_json, coop_root, tmp_path / "other", "zeroshot", "--data.coop.cache_dir", str(out))) == 2
    )
    err = capsys.readouterr().err
    assert str(cache) in err and "stale" in err


def test_base2new_trains_through_the_cli(model_json, coop_root, tmp_path):
    out = tmp_path / "ra"
    assert main(train_args(model_json, coop_root, out, "radapter", "--optim.lr", "0.05")) == 0
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["alpha"] for r in rows] == [0.0, 0.5, 1.0] and [r["default"] for r in rows if "default" in r] == [True]
    for r in rows:
        assert r["task"] == "base2new" and r["metric"] == "top1" and r["id_set"] == "base"
        assert r["HM:top1"] == pytest.approx(2 * r["base:top1"] * r["novel:top1"] / (r["base:top1"] + r["novel:top1"]))
    assert (out / "fewshot_dtd_4shot_seed0.json").is_file() and (out / "base_classes.txt").is_file()
    table = (out / "results.md").read_text()
    assert "| base (ID) | novel (OOD) | HM (base, novel) |" in table
    record = json.loads((out / "task.json").read_text())
    assert record["classnames"] == DTD_NAMES[:3] and record["eval_sets"]["novel"] == DTD_NAMES[3:]
    # a finished run re-evaluates from its checkpoint to the same numbers
    assert main(["eval", "--run", str(out), "--alpha", "0.5"]) == 0
    again = json.loads((out / "eval.jsonl").read_text().splitlines()[0])
    default = next(r for r in rows if r.get("default"))
    assert again["base:top1"] == default["base:top1"] and again["novel:top1"] == default["novel:top1"]


def test_cross_dataset_rows(model_json, coop_root, tmp_path):
    out = tmp_path / "xd"
    args = train_args(model_json, coop_root, out, "zeroshot")
    args[args.index("base2new")] = "cross_dataset"
    assert main([*args, "--data.coop.targets", "[eurosat, oxford_pets]"]) == 0
    (row,) = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert row["task"] == "cross_dataset" and row["id_set"] == "dtd" and row["ood_sets"] == ["eurosat", "oxford_pets"]
    assert row["avg_ood:top1"] == pytest.approx((row["eurosat:top1"] + row["oxford_pets:top1"]) / 2)
    assert "dtd:top1" in row and not any(k.startswith("HM") for k in row)

    # each target is scored on all its classes with its own names and CoOp template
    cfg = _cfg(model_json, coop_root, tmp_path / "direct", task="cross_dataset", **{"data.coop.targets": ["eurosat"]})
    task, backbone = _task(cfg)
    calls = []

    def class_head(names, templates):
        calls.append((names, templates))
        return build_zero_shot_head(backbone.model, backbone.tokenizer, names, templates)

    assert task.evaluate(Scorer(backbone.model, class_head=class_head)) == task.evaluate(Scorer(backbone.model))
    assert calls == [
        (DTD_NAMES, DTD_TEMPLATE),
        (["Annual Crop Land", "Forest", "River"], ["a centered satellite photo of {}."]),
    ]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"data.kind": "imagefolder"}, "data.kind: 'imagefolder' is not a base2new source"),
        ({"data.coop.dataset": None}, "data.coop.dataset: the base2new task needs a dataset"),
        ({"data.coop.dataset": "mnist"}, "unknown CoOp dataset 'mnist'"),
        ({"data.coop.targets": ["eurosat"]}, "data.coop.targets: the base2new task has no target datasets"),
        ({"data.eval_sets": [{"name": "x", "path": "y"}]}, "builds its own evaluation sets (base, novel)"),
        ({"data.shots": 4}, "the base2new task reads data.coop.shots"),
        ({"data.coop.templates": "nope.txt"}, "data.coop.templates: templates: 'nope.txt'"),
        ({"data.coop.layout": "zhou"}, "data.coop.layout: expected coop | authors"),
        ({"task": "cross_dataset", "data.coop.targets": ["dtd"]}, "data.coop.targets[0]: 'dtd' is the source"),
        ({"task": "cross_dataset", "data.coop.targets": ["food", "eurosat"]}, "data.coop.targets[0]: unknown CoOp"),
        ({"task": "cross_dataset", "data.kind": "world"}, "'world' is not a cross_dataset source; expected coop"),
    ],
)
def test_bad_configs_are_refused_before_anything_runs(overrides, message, model_json, tmp_path):
    cfg = _cfg(model_json, tmp_path / "nowhere", tmp_path / "out", **overrides)
    with pytest.raises(ConfigError) as err:
        check_config(cfg)
    assert message in str(err.value)
    assert not (tmp_path / "out").exists()


def test_missing_dataset_is_one_error_naming_the_folder(model_json, tmp_path, capsys):
    assert main(train_args(model_json, tmp_path / "empty", tmp_path / "out", "zeroshot")) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "empty" / "dtd") in err and "DescribableTextures" in err


def test_world_source_splits_the_world_classes(tmp_path):
    from radapter.cli.demo import WORLD_MODEL
    from radapter.data.world import CLASSES

    cfg = load_config(
        None,
        {
            "task": "base2new",
            "model.name": f"local-dir:{WORLD_MODEL}",
            "out": str(tmp_path / "w"),
            "data.kind": "world",
            "data.world.train": 60,
            "data.world.test": 40,
            "data.coop.shots": 3,
            "progress": False,
        },
    )
    task, _ = _task(cfg)
    assert task.classnames == list(CLASSES[:5]) and task.templates[0] == "a photo of a {}."
    labels = sorted(task._train.targets)
    assert labels == sorted(list(range(5)) * 3)
    base, novel = task.eval_sets
    assert novel.classnames == list(CLASSES[5:]) and len(base.dataset) + len(novel.dataset) == 40
    assert sorted(set(novel.dataset.targets)) == [0, 1, 2, 3, 4] and len(novel.dataset) == 20
