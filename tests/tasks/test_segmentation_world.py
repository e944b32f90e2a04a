"""The segmentation task on the world's scenes: cells as training crops, every class scored in every domain, and
the cell-by-cell scoring equal to CAT-Seg's sliding window over the whole scene."""

from __future__ import annotations

import os

import pytest
import torch

from radapter.cli.demo.segmentation import COMMON, SIZES
from radapter.config import load_config
from radapter.data.world import WORLD_CLIP_DIR
from radapter.runs import load_backbone
from radapter.tasks.segmentation import SegmentationTask

pytestmark = pytest.mark.skipif(
    not os.path.isfile(os.path.join(WORLD_CLIP_DIR, "open_clip_config.json")), reason="the world CLIP is not built"
)


@pytest.fixture(scope="module")
def world_task():
    cfg = load_config(None, {**COMMON, **SIZES["ci"], "progress": False})
    backbone = load_backbone(cfg)
    return SegmentationTask(cfg, backbone, torch.device("cpu"), seed=0)


def test_world_data_trains_on_seen_cells_and_scores_every_class_in_every_domain(world_task):
    task = world_task
    assert task.train_prompts == ["arrow", "cross", "hourglass", "moon", "star"]
    x, y = task.train_dataset().tensors
    assert x.shape[1:] == (3, 32, 32) and y.shape[1:] == (32, 32)
    assert ((y != 255).flatten(1).any(1)).all(), "only cells holding an object train"
    assert set(torch.unique(y).tolist()) <= {0, 1, 2, 3, 4, 255}
    names = [es.name for es in task.eval_sets]
    assert names == ["id", "ood_cartoon", "ood_sketch", "ood_inverted", "ood_noisy", "ood_lowcontrast"]
    assert [es.ood for es in task.eval_sets] == [False] + [True] * 5
    for es in task.eval_sets:
        assert es.classes.num_classes == 10 and es.seen == [0, 2, 4, 6, 8]


def test_scoring_cells_is_the_sliding_window_over_the_scene(world_task):
    task = world_task
    seg = task.segmenter.with_clip(task.backbone.model).eval()
    es = task.eval_sets[0]
    assert task._scored_by_cell(es, seg) == 32
    by_cell = task.evaluate_set(seg, es)
    task.world = False  # the generic path: Segmenter.predict_batch, sliding 32 px windows over each 64 px scene
    try:
        generic = task.evaluate_set(task.segmenter.with_clip(task.backbone.model).eval(), es)
    finally:
        task.world = True
    assert by_cell.labelled_pixels == generic.labelled_pixels > 0
    assert by_cell.miou == pytest.approx(generic.miou, abs=1e-9)
    assert by_cell.iou == pytest.approx(generic.iou, nan_ok=True)
    fields = task._set_fields(es, by_cell)
    assert {"id:mIoU", "id:seen_mIoU", "id:unseen_mIoU", "id_seen:mIoU", "id_unseen:mIoU"} <= set(fields)
    assert task.summarize({**fields, **{f"{e.name}:mIoU": 1.0 for e in task.eval_sets[1:]}})["id_set"] == "id_seen"
