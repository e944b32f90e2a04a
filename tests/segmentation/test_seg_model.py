"""The segmenter's mechanics on tiny random CLIPs: dense features, shapes, equivariance, losses, sliding window."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from seg_helpers import TINY_HEAD, make_clip, make_segmenter

import radapter
from radapter.segmentation import dense_features, interpolate_pos_embed, segmentation_loss, sliding_window_scores

KINDS = ["open_clip", "hf"]


@pytest.mark.parametrize("kind", KINDS)
def test_dense_forward_reproduces_encode_image_at_native_size(kind):
    clip, _ = make_clip(kind)
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    pooled = dense_features(clip, x, dense_last=False).features[:, :, 0, 0]
    assert torch.allclose(pooled, radapter.encode_image(clip, x), atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_dense_features_at_any_size(kind):
    clip, _ = make_clip(kind)
    d = dense_features(clip, torch.randn(2, 3, 40, 64), layers=(0, -1, 0))
    width = 48 if kind == "open_clip" else 40
    assert d.grid == (5, 8) and d.features.shape[:2] == (2, 24 if kind == "hf" else 32)
    assert [t.shape for t in d.intermediates] == [(2, width, 5, 8)] * 3
    assert torch.equal(d.intermediates[0], d.intermediates[2])
    with pytest.raises(ValueError, match="multiple of the patch size 8"):
        dense_features(clip, torch.randn(1, 3, 30, 32))


def test_pos_embed_interpolation_keeps_class_position_and_is_identity_at_native_grid():
    pos = torch.randn(1 + 4 * 4, 6)
    assert interpolate_pos_embed(pos, (4, 4), (4, 4)) is pos
    out = interpolate_pos_embed(pos, (4, 4), (2, 6))
    assert out.shape == (13, 6) and torch.equal(out[0], pos[0])
    ref = F.interpolate(
        pos[1:].reshape(1, 4, 4, 6).permute(0, 3, 1, 2), size=(2, 6), mode="bicubic", align_corners=False
    )
    assert torch.allclose(out[1:], ref.permute(0, 2, 3, 1).reshape(12, 6))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("k", [1, 3, 6])
def test_output_is_k_by_h_by_w_for_any_vocabulary(kind, k):
    # input 48 -> 6x6 grid with 4x4 windows: padded, shifted windows are exercised
    seg = make_segmenter(kind, input_size=48).eval()
    names = ["cat", "dog", "sofa, couch", "floor", "sky", "tree"][:k]
    with torch.no_grad():
        logits = seg(torch.randn(2, 3, 40, 56), names)
        scores = seg.predict(torch.randn(2, 3, 40, 56), names)
    assert logits.shape == (2, k, 24, 24)
    assert [s.shape for s in scores] == [(k, 40, 56)] * 2
    assert all(((s >= 0) & (s <= 1)).all() for s in scores)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("attention", ["linear", "full"])
def test_permuting_the_vocabulary_permutes_the_output(kind, attention):
    from dataclasses import replace

    seg = make_segmenter(kind, input_size=48, head=replace(TINY_HEAD, attention=attention, pooling_size=2)).eval()
    names = ["cat", "dog", "sofa, couch", "floor", "sky"]
    perm = [3, 0, 4, 2, 1]
    x = torch.randn(2, 3, 48, 48, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = seg(x, names)
        out_p = seg(x, [names[i] for i in perm])
    assert torch.allclose(out_p, out[:, perm], atol=1e-5)
    assert not torch.allclose(out[:, 0], out[:, 1], atol=1e-3)  # classes do get different maps


def test_head_has_no_per_class_parameters():
    seg = make_segmenter("open_clip")
    n = sum(p.numel() for p in seg.head.parameters())
    x = torch.randn(1, 3, 32, 32)
    for k in (2, 9):  # the same head serves any vocabulary size
        assert seg(x, [f"class {i}" for i in range(k)]).shape[1] == k
    assert sum(p.numel() for p in seg.head.parameters()) == n


def test_losses_by_hand_and_ignore_index():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 4, 4, generator=g)
    target = torch.randint(0, 3, (2, 4, 4), generator=g)
    target[0, 0] = 65535  # an ADE-847-style ignore value
    valid = target != 65535
    z = logits.permute(0, 2, 3, 1)[valid]
    y = target[valid]
    onehot = F.one_hot(y, 3).float()
    bce = -(onehot * F.logsigmoid(z) + (1 - onehot) * F.logsigmoid(-z)).mean()
    ce = -F.log_softmax(z, dim=1).gather(1, y[:, None]).mean()
    assert segmentation_loss(logits, target, "bce", 65535) == pytest.approx(bce.item(), abs=1e-6)
    assert segmentation_loss(logits, target, "ce", 65535) == pytest.approx(ce.item(), abs=1e-6)
    # logits at a lower resolution are upsampled to the labels
    up = segmentation_loss(logits[:, :, :2, :2], target, "ce", 65535)
    ref = F.interpolate(logits[:, :, :2, :2], size=(4, 4), mode="bilinear", align_corners=False)
    assert up.item() == pytest.approx(segmentation_loss(ref, target, "ce", 65535).item())
    empty = segmentation_loss(logits.requires_grad_(), torch.full((2, 4, 4), 255), "bce")
    assert empty.item() == 0.0 and empty.requires_grad
    with pytest.raises(ValueError, match=r"labels \[7\]"):
        segmentation_loss(logits, torch.full((2, 4, 4), 7), "bce")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("loss", ["bce", "ce"])
def test_loss_falls_over_20_steps(kind, loss):
    seg = make_segmenter(kind, loss=loss)
    for p in seg.clip.parameters():
        p.requires_grad_(False)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 32, 32, generator=g)
    names = ["cat", "dog", "sky"]
    with torch.no_grad():  # targets the cost volume supports: its own per-patch arg-max
        y = F.interpolate(seg.cost_volume(x, names), size=(32, 32), mode="nearest").argmax(1)
    y[:, :4] = 255  # and an ignored band
    opt = torch.optim.AdamW(seg.head.parameters(), lr=1e-3)
    losses = []
    seg.train()
    for _ in range(20):
        loss_value = seg.loss(seg(x, names), y)
        opt.zero_grad()
        loss_value.backward()
        opt.step()
        losses.append(loss_value.item())
    assert sum(losses[-3:]) / 3 < 0.9 * sum(losses[:3]) / 3, losses


@pytest.mark.parametrize("kind", KINDS)
def test_sliding_window_equals_single_pass_when_the_image_is_the_window(kind):
    seg = make_segmenter(kind, input_size=32).eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    single = seg.predict(x, ["cat", "dog", "sky"])
    seg.config.sliding_window, seg.config.window, seg.config.sliding_resize = True, 32, None
    slid = seg.predict(x, ["cat", "dog", "sky"])
    for a, b in zip(single, slid):
        assert torch.allclose(a, b, atol=1e-6)


def test_sliding_window_averages_overlapping_crops_and_the_global_view():
    img = torch.arange(1 * 3 * 10 * 14, dtype=torch.float32).reshape(1, 3, 10, 14)

    def crop_mean(t):  # one "class": the mean of the crop, everywhere in the crop
        return t.mean(dim=(1, 2, 3), keepdim=True).expand(-1, 1, *t.shape[-2:])

    out = sliding_window_scores(crop_mean, img, window=6, overlap=0.5, global_view=True)
    # windows of 6 with stride 3: rows start 0, 3, and 4 (aligned to the border); columns 0, 3, 6, 8
    total, count = torch.zeros(10, 14), torch.zeros(10, 14)
    for y in (0, 3, 4):
        for x in (0, 3, 6, 8):
            total[y : y + 6, x : x + 6] += img[:, :, y : y + 6, x : x + 6].mean()
            count[y : y + 6, x : x + 6] += 1
    ref = (total / count + img.mean()) / 2
    assert count.min() >= 1
    assert torch.allclose(out[0, 0], ref)
    assert torch.allclose(sliding_window_scores(crop_mean, img, 6, 0.5, global_view=False)[0, 0], total / count)


def test_config_and_head_round_trip_through_json_and_safetensors(tmp_path):
    import json

    from safetensors.torch import load_file, save_file

    from radapter.segmentation import SegmenterConfig

    seg = make_segmenter("open_clip", input_size=48).eval()
    cfg = SegmenterConfig(**json.loads(json.dumps(seg.config.to_dict())))
    assert cfg == seg.config
    save_file({k: v.contiguous() for k, v in seg.head.state_dict().items()}, str(tmp_path / "head.safetensors"))
    other = make_segmenter("open_clip", seed=0, input_size=48).eval()
    torch.manual_seed(7)
    other = type(seg)(other.clip, other.tokenizer, cfg).eval()  # a fresh, differently initialised head
    x = torch.randn(1, 3, 48, 48)
    with torch.no_grad():
        assert not torch.allclose(other(x, ["cat", "dog"]), seg(x, ["cat", "dog"]))
        other.head.load_state_dict(load_file(str(tmp_path / "head.safetensors")))
        assert torch.equal(other(x, ["cat", "dog"]), seg(x, ["cat", "dog"]))


@pytest.mark.parametrize(
    "grid, shift, poke, reach",
    [
        (8, False, (0, 0), (slice(0, 4), slice(0, 4))),  # plain 4x4 windows
        (8, True, (0, 0), (slice(0, 2), slice(0, 2))),  # shifted by 2: the corner's window wraps, the mask cuts it
        (8, True, (3, 3), (slice(2, 6), slice(2, 6))),  # shifted window in the middle
        (6, False, (5, 5), (slice(4, 6), slice(4, 6))),  # 6x6 padded to 8x8: the last window holds 2x2 real tokens
        (6, True, (0, 5), (slice(0, 2), slice(2, 6))),  # padded and shifted: [2, 6) is one window, pad masked
    ],
)
def test_window_attention_reaches_exactly_its_window(grid, shift, poke, reach):
    from radapter.segmentation.head import SpatialBlock

    torch.manual_seed(0)
    block = SpatialBlock(dim=8, guidance_dim=4, heads=2, window=4, shift=shift, mlp_ratio=2.0).eval()
    x = torch.randn(1, 2, grid, grid, 8)
    g = torch.randn(1, grid, grid, 4)
    x2 = x.clone()
    x2[:, :, poke[0], poke[1]] += torch.randn(8)  # not a constant: LayerNorm would remove that
    with torch.no_grad():
        changed = (block(x2, g) - block(x, g)).abs().amax(dim=(0, 1, 4)) > 1e-6  # [grid, grid]
    expected = torch.zeros(grid, grid, dtype=torch.bool)
    expected[reach] = True
    assert torch.equal(changed, expected)
