"""mIoU and friends as detectron2's SemSegEvaluator computes them, checked on hand-made confusion matrices."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from radapter.evaluation.segmentation import SemSegEvaluator, confusion_matrix, segmentation_metrics

IGN = 255


def _eval(gt, pred, n, mode="present", seen=None):
    ev = SemSegEvaluator(n, IGN, miou_mode=mode, seen=seen)
    ev.update(torch.tensor(pred).view(1, -1), torch.tensor(gt).view(1, -1))
    return ev


def test_three_classes_by_hand():
    gt = [0, 0, 0, 1, 1, 2, IGN, IGN]
    pred = [0, 0, 1, 1, 2, 2, 0, 1]
    ev = _eval(gt, pred, 3)
    # rows = prediction, columns = ground truth, last column = ignored pixels
    expected = torch.tensor([[2, 0, 0, 1], [1, 1, 0, 1], [0, 1, 1, 0], [0, 0, 0, 0]])
    assert torch.equal(ev.confusion, expected)
    r = ev.compute()
    # TP = (2, 1, 1), G = (3, 2, 1), P over labelled pixels = (2, 2, 2)
    # IoU = 2/3, 1/3, 1/2 ; Acc = 2/3, 1/2, 1
    assert r.iou == pytest.approx([100 * 2 / 3, 100 / 3, 50.0])
    assert r.miou == pytest.approx(100 * (2 / 3 + 1 / 3 + 1 / 2) / 3)  # 50
    assert r.fwiou == pytest.approx(100 * (3 / 6 * 2 / 3 + 2 / 6 * 1 / 3 + 1 / 6 * 1 / 2))  # 52.78
    assert r.pacc == pytest.approx(100 * 4 / 6)
    assert r.macc == pytest.approx(100 * (2 / 3 + 1 / 2 + 1) / 3)
    assert r.labelled_pixels == 6 and r.miou_mode == "present"


def test_predicted_but_absent_class_counts_only_in_the_old_mode():
    gt = [0, 0, 1, 1]
    pred = [0, 3, 1, 1]  # class 3 is predicted once but never in the ground truth; class 2 neither
    new, old = _eval(gt, pred, 4, "present").compute(), _eval(gt, pred, 4, "predicted").compute()
    # IoU0 = 1 / (2 + 1 - 1) = 1/2, IoU1 = 2 / (2 + 2 - 2) = 1
    assert new.miou == pytest.approx(100 * (0.5 + 1.0) / 2)  # detectron2 >= 2022: classes present in the GT
    assert old.miou == pytest.approx(100 * (0.5 + 1.0) / 3)  # detectron2 <= v0.6: class 3 counted as IoU 0
    assert new.fwiou == old.fwiou == pytest.approx(100 * (0.5 * 0.5 + 0.5 * 1.0))
    assert math.isnan(new.iou[2]) and math.isnan(new.iou[3]) and math.isnan(old.iou[3])
    assert old.miou_mode == "predicted" and old.to_dict()["iou"][3] is None


def test_all_ignore_image_adds_nothing_and_alone_gives_nan():
    gt = [0, 0, 0, 1, 1, 2, IGN, IGN]
    pred = [0, 0, 1, 1, 2, 2, 0, 1]
    ev = _eval(gt, pred, 3)
    before = ev.compute()
    ev.update(torch.tensor([[2, 1], [0, 0]]), torch.full((2, 2), IGN))
    after = ev.compute()
    assert after.miou == before.miou and after.pacc == before.pacc and after.labelled_pixels == 6
    only = SemSegEvaluator(3, IGN)
    only.update(torch.tensor([[2, 1], [0, 0]]), torch.full((2, 2), IGN))
    r = only.compute()
    assert r.labelled_pixels == 0 and math.isnan(r.miou) and math.isnan(r.pacc) and math.isnan(r.fwiou)
    assert r.to_dict()["miou"] is None


def test_seen_unseen_and_harmonic_miou():
    gt = [0, 0, 0, 1, 1, 2, IGN, IGN]
    pred = [0, 0, 1, 1, 2, 2, 0, 1]
    r = _eval(gt, pred, 3, seen=[0]).compute()
    s, u = 100 * 2 / 3, 100 * (1 / 3 + 1 / 2) / 2
    assert r.seen_miou == pytest.approx(s) and r.unseen_miou == pytest.approx(u)
    assert r.harmonic_miou == pytest.approx(2 * s * u / (s + u))
    with pytest.raises(ValueError, match="out of range"):
        segmentation_metrics(torch.zeros(4, 4, dtype=torch.long), seen=[5])


def _detectron2_reference(conf: np.ndarray, old: bool) -> dict:
    """detectron2's evaluate(), transcribed plainly (current and v0.6 versions)."""
    n = conf.shape[0] - 1
    acc = np.full(n, np.nan)
    iou = np.full(n, np.nan)
    tp = conf.diagonal()[:-1].astype(float)
    pos_gt = np.sum(conf[:-1, :-1], axis=0).astype(float)
    class_weights = pos_gt / np.sum(pos_gt)
    pos_pred = np.sum(conf[:-1, :-1], axis=1).astype(float)
    acc_valid = pos_gt > 0
    acc[acc_valid] = tp[acc_valid] / pos_gt[acc_valid]
    union = pos_gt + pos_pred - tp
    if old:
        iou_valid = (pos_gt + pos_pred) > 0
        iou[acc_valid] = tp[acc_valid] / union[acc_valid]
        miou = np.sum(iou[acc_valid]) / np.sum(iou_valid)
        fiou = np.sum(iou[acc_valid] * class_weights[acc_valid])
    else:
        iou_valid = np.logical_and(acc_valid, union > 0)
        iou[iou_valid] = tp[iou_valid] / union[iou_valid]
        miou = np.sum(iou[iou_valid]) / np.sum(iou_valid)
        fiou = np.sum(iou[iou_valid] * class_weights[iou_valid])
    macc = np.sum(acc[acc_valid]) / np.sum(acc_valid)
    pacc = np.sum(tp) / np.sum(pos_gt)
    return {"mIoU": 100 * miou, "fwIoU": 100 * fiou, "mACC": 100 * macc, "pACC": 100 * pacc, "iou": 100 * iou}


@pytest.mark.parametrize("mode", ["present", "predicted"])
def test_matches_detectron2_formula_on_random_data(mode):
    rng = np.random.default_rng(0)
    n = 7
    ev = SemSegEvaluator(n, IGN, miou_mode=mode)
    conf = np.zeros((n + 1, n + 1), dtype=np.int64)
    for _ in range(5):
        gt = rng.choice([0, 1, 2, 4, IGN], size=(9, 11))  # classes 3, 5, 6 never in the ground truth
        pred = rng.integers(0, n - 1, size=(9, 11))  # class 6 never predicted
        ev.update(torch.from_numpy(pred), torch.from_numpy(gt))
        g = np.where(gt == IGN, n, gt)
        conf += np.bincount((n + 1) * pred.reshape(-1) + g.reshape(-1), minlength=(n + 1) ** 2).reshape(n + 1, n + 1)
    assert np.array_equal(ev.confusion.numpy(), conf)
    r, ref = ev.compute(), _detectron2_reference(conf, old=mode == "predicted")
    assert r.miou == pytest.approx(ref["mIoU"]) and r.fwiou == pytest.approx(ref["fwIoU"])
    assert r.macc == pytest.approx(ref["mACC"]) and r.pacc == pytest.approx(ref["pACC"])
    assert np.allclose(r.iou, ref["iou"], equal_nan=True)


def test_scores_are_resized_to_the_ground_truth_and_prompts_mapped():
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(3, 4, 5, generator=g)
    gt = torch.randint(0, 3, (8, 10), generator=g)
    ev = SemSegEvaluator(3, IGN)
    ev.update(scores, gt)
    ref = F.interpolate(scores[None], size=(8, 10), mode="bilinear", align_corners=False)[0].argmax(0)
    assert torch.equal(ev.confusion, confusion_matrix(ref, gt, 3, IGN))
    with pytest.raises(ValueError, match="ground truth's size"):
        ev.update(ref[:4], gt)
    # VOC-20b-like: three prompts, prompts 1 and 2 both mean class 1 ("background")
    ev2 = SemSegEvaluator(2, IGN, prompt_to_class=[0, 1, 1])
    ev2.update(scores, gt.clamp(max=1))
    mapped = torch.tensor([0, 1, 1])[ref]
    assert torch.equal(ev2.confusion, confusion_matrix(mapped, gt.clamp(max=1), 2, IGN))


def test_bad_values_are_named():
    with pytest.raises(ValueError, match=r"ground-truth values \[7\]"):
        confusion_matrix(torch.zeros(2, 2), torch.tensor([[0, 7], [1, IGN]]), 3, IGN)
    with pytest.raises(ValueError, match="predictions must be class ids 0..2"):
        confusion_matrix(torch.tensor([[0, 3]]), torch.tensor([[0, 1]]), 3, IGN)
    with pytest.raises(ValueError, match="ignore_index 2 is a class id"):
        SemSegEvaluator(3, 2)
    with pytest.raises(ValueError, match="miou_mode"):
        SemSegEvaluator(3, IGN, miou_mode="mean")


def test_merge_sums_confusions_of_shards():
    a, b = SemSegEvaluator(3, IGN), SemSegEvaluator(3, IGN)
    a.update(torch.tensor([[0, 1]]), torch.tensor([[0, 0]]))
    b.update(torch.tensor([[2, 2]]), torch.tensor([[2, IGN]]))
    whole = SemSegEvaluator(3, IGN)
    whole.update([torch.tensor([[0, 1]]), torch.tensor([[2, 2]])], [torch.tensor([[0, 0]]), torch.tensor([[2, IGN]])])
    a.merge(b.confusion)
    assert torch.equal(a.confusion, whole.confusion)
