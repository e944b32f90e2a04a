"""An exported merged model carries what classifying needs (class names, templates, the zero-shot head), and
the snippet in its model card classifies an image with plain open_clip / transformers, as evaluated."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import tiny_train_args
from radapter.adapters.card import PLACEHOLDER_DIR
from radapter.cli.main import main


def _run_card_snippet(folder, image_path, capsys) -> str:
    card = (folder / "README.md").read_text()
    code = re.search(r"## Classify an image.*?```python\n(.*?)```", card, flags=re.S).group(1)
    code = code.replace(PLACEHOLDER_DIR, str(folder)).replace('"image.jpg"', json.dumps(str(image_path)))
    capsys.readouterr()
    exec(compile(code, "model-card-snippet", "exec"), {})
    return capsys.readouterr().out.strip()


@pytest.mark.parametrize("library", ["open_clip", "hf"])
def test_the_card_snippet_classifies_like_the_evaluation(
    library, tiny_open_clip_json, tiny_hf_dir, tiny_folders, tmp_path, capsys
):
    out = tmp_path / library
    args = tiny_train_args(tiny_open_clip_json, tiny_folders, out, "radapter", "--optim.lr", "0.05")
    if library == "hf":
        args[args.index("--model") + 1] = f"hf:{tiny_hf_dir}"
    assert main(args) == 0
    merged = out / "merged"
    info = json.loads((merged / "classifier.json").read_text())
    assert info["classnames"] == ["cat", "dog", "fish"] and info["templates"]
    from radapter.utils import load_safetensors

    head = load_safetensors(str(merged / "zero_shot_head.safetensors"))["head"]
    assert head.shape[0] == 3 and torch.allclose(head.norm(dim=-1), torch.ones(3), atol=1e-5)
    # the snippet's prediction for an image = the argmax the evaluation would take with the same head
    image_path = tiny_folders / "test" / "dog" / "0.png"
    predicted = _run_card_snippet(merged, image_path, capsys)
    assert predicted in info["classnames"]
    import radapter
    from radapter.data import eval_transform

    loaded = radapter.load_model(f"local-dir:{merged}" if library == "open_clip" else f"hf:{merged}")
    image = eval_transform(32, mean=loaded.mean, std=loaded.std)(Image.open(image_path).convert("RGB"))
    with torch.no_grad():
        f = radapter.encode_image(loaded.model.eval(), image.unsqueeze(0), normalize=True)
    assert predicted == info["classnames"][int((f @ head.T).argmax())]


def test_a_finished_run_is_re_evaluated_without_its_training_data(tiny_open_clip_json, tiny_folders, tmp_path):
    import shutil

    out = tmp_path / "ra"
    assert main(tiny_train_args(tiny_open_clip_json, tiny_folders, out, "radapter", "--optim.lr", "0.05")) == 0
    trained = {r["alpha"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    shutil.rmtree(tiny_folders / "train")
    assert main(["eval", "--run", str(out), "--alpha", "0.5"]) == 0
    (row,) = map(json.loads, (out / "eval.jsonl").read_text().splitlines())
    assert row["test:top1"] == trained[0.5]["test:top1"] and row["shiftB:top1"] == trained[0.5]["shiftB:top1"]
    np.testing.assert_equal(json.loads((out / "task.json").read_text())["classnames"], ["cat", "dog", "fish"])
