"""The segmentation task end to end through the CLI on a tiny detectron2-layout tree (PNG labels with 255 ignore,
a 16-bit TIFF set with 65535 ignore): every CLIP strategy trains and reports; α = 0 is the frozen model exactly;
merged = unmerged; the exported head is what `seg eval` / `seg predict` use; refused combinations fail at config
time."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from seg_trees import TINY_HEAD, as_argv, seg_config, write_tree

from conftest import TINY_OPEN_CLIP_CFG
from radapter.adapters import set_alpha
from radapter.cli.main import main
from radapter.config import load_config
from radapter.runs import Run, load_backbone, run_config
from radapter.segmentation import Segmenter
from radapter.tasks.base import Scorer
from radapter.utils import load_safetensors

METHODS = ["frozen", "qv", "full", "lora", "radapter"]


def _rows(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def model_json(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny-clip.json"
    path.write_text(json.dumps(TINY_OPEN_CLIP_CFG))
    return str(path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, model_json):
    """One finished run per method (seg train on the tiny tree), shared by the tests of this module."""
    root = tmp_path_factory.mktemp("seg")
    runs = {}
    for method in METHODS:
        cfg = seg_config(root / method, model_json, method)
        cfg.pop("task")
        cfg.pop("data.kind")  # `seg train` sets both
        out = root / method / "run"
        assert main(["seg", "train", *as_argv({**cfg, "out": str(out)})]) == 0
        runs[method] = (out, cfg)
    return runs


@pytest.mark.parametrize("method", METHODS)
def test_every_strategy_trains_and_reports_miou_per_set(trained, method):
    out, cfg = trained[method]
    rows = _rows(out / "results.jsonl")
    assert [r["alpha"] for r in rows] == ([0.0, 0.4, 1.0] if method == "radapter" else [None])
    for r in rows:
        assert r["task"] == "segmentation" and r["metric"] == "mIoU" and r["method"] == method
        assert r["id_set"] == "val" and r["ood_sets"] == ["shift"] and r["miou_mode"] == "present"
        for s in ("val", "shift"):
            assert 0 <= r[f"{s}:mIoU"] <= 100 and 0 <= r[f"{s}:pAcc"] <= 100
            assert r[f"{s}:miou_mode"] == "present"
            assert set(r[f"{s}:class_IoU"]) == {"cat", "sofa", "floor"}
        assert r["avg_ood:mIoU"] == r["shift:mIoU"]
    if method == "radapter":
        assert [r["alpha"] for r in rows if r.get("default")] == [0.4]
    # the head trained and was exported beside the CLIP weights
    head = load_safetensors(str(out / "segmenter" / "head.safetensors"))
    ckpt = load_safetensors(str(out / "checkpoints" / "step_0000004" / "model.safetensors"))
    assert all(torch.equal(ckpt[f"task.head.{k}"], v) for k, v in head.items())
    meta = json.loads((out / "segmenter" / "segmenter.json").read_text())
    assert meta["train_classes"] == ["cat", "sofa, couch", "floor"] and meta["method"] == method
    assert (out / "merged").is_dir() == (method != "frozen")
    losses = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 4 and all(np.isfinite(losses))


def _base_state(cfg) -> dict[str, torch.Tensor]:
    return load_backbone(load_config(None, cfg)).model.state_dict()


def test_which_clip_weights_each_strategy_trains(trained):
    base = _base_state(trained["qv"][1])
    d = TINY_OPEN_CLIP_CFG["vision_cfg"]["width"]
    for method in ("qv", "full"):
        merged = load_safetensors(str(trained[method][0] / "merged" / "open_clip_model.safetensors"))
        changed = {k for k in base if not torch.equal(base[k], merged[k])}
        assert "logit_scale" not in changed
        if method == "full":
            assert {"visual.conv1.weight", "token_embedding.weight", "visual.proj"} <= changed
        else:  # Q/V: only fused attention input projections, and in them only the q and v rows
            assert changed and all(k.endswith("attn.in_proj_weight") for k in changed)
            w0, w1 = (
                base["visual.transformer.resblocks.0.attn.in_proj_weight"],
                merged["visual.transformer.resblocks.0.attn.in_proj_weight"],
            )
            assert torch.equal(w0[d : 2 * d], w1[d : 2 * d]), "the key rows stay frozen"
            assert not torch.equal(w0[:d], w1[:d]) and not torch.equal(w0[2 * d :], w1[2 * d :])
    rows = {m: _rows(trained[m][0] / "results.jsonl")[0] for m in ("frozen", "qv")}
    head_params = rows["frozen"]["trainable_params"]
    qv = 2 * (2 * 48 * 48) + 2 * (2 * 32 * 32)  # q and v rows of 2 vision blocks (width 48) and 2 text blocks (32)
    assert rows["qv"]["trainable_params"] == head_params + qv and rows["qv"]["clip_trainable_params"] == qv


def test_clip_weights_train_at_the_scaled_learning_rate(trained):
    run = Run(run_config(str(trained["qv"][0])))
    parts = run.setup(eval_only=True)
    groups = parts.method.param_groups()
    head_ids = {id(p) for p in parts.task.segmenter.head.parameters()}
    for g in groups:
        is_head = all(id(p) in head_ids for p in g["params"])
        assert g["lr"] == pytest.approx(0.01 if is_head else 0.01 * 0.1), "data.segmentation.clip_lr_scale 0.1"


def test_alpha_zero_is_the_frozen_clip_exactly_and_merged_equals_unmerged(trained):
    out, cfg = trained["radapter"]
    run = Run(run_config(str(out)))
    parts = run.setup(eval_only=True)
    task, method = parts.task, parts.method
    x = torch.randn(2, 3, 40, 48, generator=torch.Generator().manual_seed(0))
    names = task.train_prompts
    frozen = Segmenter(_fresh_base(cfg), task.backbone.tokenizer, task.seg_config, head=task.segmenter.head).eval()
    # the variants share one merged copy, re-weighted per α: use each as it comes
    merges = method.variants([0.0, 0.4])
    with torch.no_grad():
        at_zero = task.segmenter.with_clip(next(merges).scorer.model).eval()
        zero_cost = at_zero.cost_volume(x, names)
        assert torch.equal(zero_cost, frozen.cost_volume(x, names))
        assert torch.equal(torch.stack(at_zero.predict(x, names)), torch.stack(frozen.predict(x, names)))
        # the α = 0 row is the frozen CLIP with this run's head, evaluated the same way
        row = _rows(out / "results.jsonl")[0]
        again = task.evaluate(Scorer(frozen.clip))
        assert all(row[k] == again[k] for k in again if k.endswith(("mIoU", "pAcc", "fwIoU")))
        # merged at α = 0.4 (what was exported) = the unmerged adapters re-scaled to 0.4
        merged = task.segmenter.with_clip(next(merges).scorer.model).eval()
        adapted = method.model.eval()
        set_alpha(adapted, 0.4)
        unmerged = task.segmenter.with_clip(adapted).eval()
        a, b = unmerged.cost_volume(x, names), merged.cost_volume(x, names)
        assert (a - b).abs().max() < 1e-5 and not torch.equal(a, zero_cost)
        pa, pb = torch.stack(unmerged.predict(x, names)), torch.stack(merged.predict(x, names))
        assert (pa - pb).abs().max() < 1e-5


def _fresh_base(cfg):
    return load_backbone(load_config(None, cfg)).model.eval()


def test_seg_eval_reloads_the_trained_head_and_reproduces_the_rows(trained, tmp_path):
    out, cfg = trained["radapter"]
    val = cfg["data.eval_sets"][0]
    argv = ["seg", "eval", "--run", str(out), "--classes", val["classes"], "--name", "val"]
    assert main([*argv, "--images", val["image_dir"], "--labels", val["label_dir"], "--alpha", "0.4"]) == 0
    (again,) = _rows(out / "seg_eval_val.jsonl")
    first = next(r for r in _rows(out / "results.jsonl") if r["alpha"] == 0.4)
    assert again["val:mIoU"] == first["val:mIoU"] and again["val:class_IoU"] == first["val:class_IoU"]
    assert again["id_set"] == "val" and again["ood_sets"] == []  # the training class list: an ID set


def test_seg_eval_finds_catseg_layouts_and_reports_seen_and_unseen_classes(trained, tmp_path):
    out, _ = trained["frozen"]
    root = tmp_path / "datasets"
    ade = ("images/validation", "annotations_detectron2/validation")  # CAT-Seg's ADE-150 layout
    # the tree's three classes written as ADE-150's floor (3), sofa (23) and wall (0)
    write_tree(root / "ADEChallengeData2016", n=3, seed=4, image_sub=ade[0], label_sub=ade[1], label_ids=[3, 23, 0])
    assert main(["seg", "eval", "--run", str(out), "--classes", "ade150", "--data", str(root)]) == 0
    (row,) = _rows(out / "seg_eval_ade150.jsonl")
    assert row["ood_sets"] == ["ade150"] and len(row["ade150:class_IoU"]) == 150
    # of the training classes (cat, "sofa, couch", floor), ADE-150 has sofa and floor: two seen, 148 unseen
    from radapter.data.segmentation import load_class_list
    from radapter.tasks.segmentation_data import seen_indices

    assert [
        load_class_list("ade150").classes[i]
        for i in seen_indices(load_class_list("ade150"), ["cat", "sofa, couch", "floor"])
    ] == ["floor", "sofa"]
    assert row["ade150:seen_mIoU"] is not None and "ade150:unseen_mIoU" in row and "ade150:hIoU" in row


def test_labels_are_read_at_their_own_bit_depth_and_the_ignore_value_is_honoured(trained):
    out, cfg = trained["frozen"]
    row = _rows(out / "results.jsonl")[0]
    for entry, ignore in zip(cfg["data.eval_sets"], (255, 65535)):
        from pathlib import Path

        labels = [np.asarray(Image.open(p)) for p in sorted(Path(entry["label_dir"]).iterdir())]
        assert labels[0].dtype == (np.uint16 if ignore == 65535 else np.uint8)
        assert row[f"{entry['name']}:labelled_pixels"] == sum(int((lab != ignore).sum()) for lab in labels)


def test_seg_predict_writes_a_colour_mask_with_the_exported_segmenter(trained, tmp_path):
    from radapter.cli.seg import load_segmenter

    out, cfg = trained["radapter"]
    image = sorted((out.parent / "val" / "images").iterdir())[1]
    png, ids = tmp_path / "pred.png", tmp_path / "ids.png"
    argv = ["seg", "predict", str(image), "--run", str(out), "--classes", "cat;sofa, couch;floor;sky"]
    assert main([*argv, "--out", str(png), "--labels-out", str(ids)]) == 0
    picture = Image.open(png)
    assert picture.mode in ("RGB", "RGBA") and picture.width > picture.height > 100
    seg, meta = load_segmenter(str(out))
    assert meta["alpha"] == 0.4
    ckpt = load_safetensors(str(out / "checkpoints" / "step_0000004" / "model.safetensors"))
    assert all(torch.equal(ckpt[f"task.head.{k}"], v) for k, v in seg.head.state_dict().items())
    from radapter.data.segmentation import to_tensor_normalised

    x = to_tensor_normalised(Image.open(image), seg.mean, seg.std)
    (scores,) = seg.predict([x], ["cat", "sofa, couch", "floor", "sky"])
    assert np.array_equal(np.asarray(Image.open(ids)), scores.argmax(0).numpy())


def test_seg_predict_refuses_comma_separated_classes(trained, capsys):
    out, _ = trained["frozen"]
    image = sorted((out.parent / "val" / "images").iterdir())[0]
    assert main(["seg", "predict", str(image), "--run", str(out), "--classes", "cat,sofa,floor"]) == 2
    assert "separate class names with ';'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("task", "method", "message"),
    [
        ("classification", "qv", "method 'qv' cannot train task 'classification'"),
        ("classification", "frozen", "has no loss of its own"),
        ("segmentation", "flyp", "computes its own loss"),
        ("segmentation", "ft", "computes its own loss"),
        ("segmentation", "zeroshot", "computes its own loss"),
    ],
)
def test_refused_combinations_fail_at_config_time(task, method, message, model_json, tmp_path, capsys):
    cfg = seg_config(tmp_path, model_json, method, task=task)
    if task == "classification":
        cfg.update({"data.kind": "imagefolder", "data.train": str(tmp_path), "data.eval_sets": []})
    out = tmp_path / "run"
    assert main(["train", *as_argv({**cfg, "out": str(out)})]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"data.kind": "imagefolder"}, "not a segmentation source"),
        ({"data.segmentation.head": {**TINY_HEAD, "hidden": 3}}, "data.segmentation.head: unknown keys ['hidden']"),
        ({"data.segmentation.loss": "focal"}, "data.segmentation.loss"),
        ({"data.segmentation.classes": "ade151"}, "unknown segmentation class list 'ade151'"),
        ({"data.eval_sets": [{"name": "x", "image_dir": "a", "label_dir": "b"}]}, "classes"),
        ({"method.qv.towers": "vision"}, "method.qv.towers"),
    ],
)
def test_bad_segmentation_settings_name_the_key(override, message, model_json, tmp_path, capsys):
    cfg = {**seg_config(tmp_path, model_json, "qv"), **override}
    assert main(["train", *as_argv({**cfg, "out": str(tmp_path / "run")})]) == 2
    assert message in capsys.readouterr().err


def test_an_eval_set_can_score_with_another_class_attention_pooling(trained):
    run = Run(run_config(str(trained["radapter"][0])))
    task = run.setup(eval_only=True).task
    seg = task.segmenter.with_clip(task.backbone.model).eval()
    es = task.eval_sets[0]
    plain = task.evaluate_set(seg, es)
    es.pooling_size = 2  # the head trained with pooling 1; pooling has no weights
    pooled = task.evaluate_set(seg, es)
    assert [b.pool for b in seg.head.classwise] == [1], "the trained pooling is restored"
    assert pooled.miou != plain.miou and task.evaluate_set(seg, es).miou == pooled.miou
    es.pooling_size = None
    assert task.evaluate_set(seg, es).miou == plain.miou


def test_a_hugging_face_clip_trains_exports_and_predicts(tiny_hf_dir, tmp_path):
    from radapter.cli.seg import load_segmenter

    cfg = seg_config(tmp_path, f"hf:{tiny_hf_dir}", "radapter")
    out = tmp_path / "run"
    assert main(["train", *as_argv({**cfg, "out": str(out)})]) == 0
    row = next(r for r in _rows(out / "results.jsonl") if r["alpha"] == 0.4)
    seg, _ = load_segmenter(str(out))  # the exported HF folder (save_pretrained) loaded into the base model
    task = Run(run_config(str(out))).setup(eval_only=True).task
    again = task._set_fields(task.eval_sets[0], task.evaluate_set(seg, task.eval_sets[0]))
    assert again["val:mIoU"] == pytest.approx(row["val:mIoU"], abs=1e-6)
    image = sorted((tmp_path / "val" / "images").iterdir())[1]
    assert main(["seg", "predict", str(image), "--run", str(out), "--out", str(tmp_path / "p.png")]) == 0
    assert (tmp_path / "p.png").stat().st_size > 0


def test_data_check_decodes_every_training_and_evaluation_image(model_json, tmp_path, capsys):
    cfg = seg_config(tmp_path, model_json, "frozen")
    (tmp_path / "train" / "images" / "0003.jpg").write_bytes(b"not a jpeg")
    assert main(["data", "check", *as_argv(cfg)]) == 1
    out = capsys.readouterr().out
    assert "train: 8 items, 1 unreadable" in out and "0003.jpg" in out
    assert "val: 4 items, 0 unreadable" in out and "shift: 3 items, 0 unreadable" in out
