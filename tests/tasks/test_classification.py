"""The classification task: training pairs use a CSV's own captions (templates only where a row has none),
eval.max_images is a class-balanced seeded subset, and the task's data is checked before anything runs."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

import radapter
from radapter.config import load_config
from radapter.evaluation.classify import _loader
from radapter.tasks import get_task


def _csv(tmp_path):
    rows = ["filepath\ttitle\tclass"]
    for i, (label, caption) in enumerate([(0, "a tabby on a sofa"), (1, ""), (2, "goldfish in a bowl"), (1, "a pug")]):
        path = tmp_path / f"{i}.png"
        Image.fromarray(np.full((16, 16, 3), 40 * i, dtype=np.uint8)).save(path)
        rows.append(f"{path}\t{caption}\t{label}")
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "names.txt").write_text("cat\ndog\nfish\n")
    return tmp_path / "train.csv"


def test_training_on_a_csv_uses_its_captions(tiny_open_clip_json, tmp_path):
    csv = _csv(tmp_path)
    cfg = load_config(
        "tiny_test",
        {
            "model.name": tiny_open_clip_json,
            "data.kind": "csv",
            "data.train": str(csv),
            "data.classnames": str(tmp_path / "names.txt"),
        },
    )
    loaded = radapter.load_model(cfg.model.name, cfg.model.pretrained)
    task = get_task("classification")(cfg, loaded, torch.device("cpu"), seed=0, progress=False)
    items = task.train_dataset()
    captions = [items[(i, 0, 100 + i)][2] for i in range(4)]
    assert captions[0] == "a tabby on a sofa" and captions[2] == "goldfish in a bowl" and captions[3] == "a pug"
    assert "dog" in captions[1] and captions[1] != ""  # the row without a caption gets a class template
    batch = task.collate([items[(i, 0, 7)] for i in range(4)])
    assert batch.texts[0] == "a tabby on a sofa" and batch.labels.tolist() == [0, 1, 2, 1]
    assert torch.equal(batch.groups, batch.labels)


class _Sorted(torch.utils.data.Dataset):
    targets = [0] * 4 + [1] * 4 + [2] * 4

    def __len__(self):
        return 12

    def __getitem__(self, i):
        return torch.zeros(3, 2, 2), self.targets[i]


def test_max_images_is_a_seeded_class_balanced_subset():
    picked = _loader(_Sorted(), batch_size=12, workers=0, max_images=3, seed=0).dataset.indices
    assert sorted(_Sorted.targets[i] for i in picked) == [0, 1, 2]
    again = _loader(_Sorted(), batch_size=12, workers=0, max_images=3, seed=0).dataset.indices
    other = [_loader(_Sorted(), 12, 0, 6, seed=s).dataset.indices for s in range(4)]
    assert picked == again and len({tuple(o) for o in other}) > 1
