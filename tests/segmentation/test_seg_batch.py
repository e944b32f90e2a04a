"""Scoring several images of one size together gives what scoring them one by one gives."""

from __future__ import annotations

import pytest
import torch
from seg_helpers import make_segmenter

from radapter.segmentation import sliding_window_scores


@pytest.mark.parametrize("sliding", [False, True])
def test_predict_batch_equals_predict_image_by_image(sliding):
    seg = make_segmenter("open_clip", input_size=32).eval()
    seg.config.sliding_window, seg.config.window, seg.config.sliding_resize = sliding, 32, None
    x = torch.randn(3, 3, 48, 56, generator=torch.Generator().manual_seed(0))
    names = ["cat", "dog, puppy", "sky"]
    one_by_one = torch.stack(seg.predict(x, names))
    together = seg.predict_batch(x, names, batch_size=4)
    assert together.shape == (3, 3, 48, 56)
    assert torch.allclose(together, one_by_one, atol=1e-5)


def test_sliding_window_scores_batches_of_images_like_single_images():
    g = torch.Generator().manual_seed(1)
    images = torch.randn(3, 3, 10, 14, generator=g)

    def crop_stats(t):  # two "classes": each crop's mean and its max, everywhere in the crop
        return torch.cat([t.mean((1, 2, 3), keepdim=True), t.amax((1, 2, 3), keepdim=True)], 1).expand(
            -1, -1, *t.shape[-2:]
        )

    together = sliding_window_scores(crop_stats, images, window=6, overlap=0.5, batch_size=5)
    for i in range(3):
        alone = sliding_window_scores(crop_stats, images[i : i + 1], window=6, overlap=0.5)
        assert torch.allclose(together[i : i + 1], alone)
