"""Hugging Face ``SiglipModel`` and ``Siglip2Model`` (Zhai et al., 2023; Tschannen et al., 2025).

Same layer layout as CLIP (``self_attn.out_proj``, ``mlp.fc2`` per encoder layer, see
:mod:`radapter.backbones.hf_layers`); the image tower's attention-pooling head is not a transformer block and gets
no adapter. Differences from CLIP that radapter handles here:

* **Sigmoid logits.** ``logit = logit_scale · f·g + logit_bias`` (:meth:`logit_bias` returns the bias), trained with
  the sigmoid loss (:func:`radapter.losses.sigmoid_loss`).
* **Text without a padding mask.** SigLIP's text tower was trained on ``max_length``-padded ids without a padding
  mask (big_vision; open_clip's SigLIP towers use none either) and pools the last position. transformers 5's
  tokenizers return an ``attention_mask``; feeding it changes the embedding of every text shorter than the
  context, so :meth:`encode_text` passes the ids only.
* **SigLIP2 takes patches.** ``Siglip2Model`` (the NaFlex checkpoints) reads pre-patchified pixels
  ``[B, N, p·p·C]`` with a patch mask and the ``(h, w)`` patch grid, from which it resizes its position
  embeddings. :meth:`Siglip2Handler.encode_image` accepts ordinary ``[B, C, H, W]`` batches (H, W multiples of the
  patch size) and patchifies them exactly as ``Siglip2ImageProcessor`` does (channels last within a patch,
  patches in row-major order), with every patch valid. The fixed-resolution SigLIP2 checkpoints are
  ``SiglipModel`` checkpoints and use :class:`SiglipHandler`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .base import register_backbone
from .hf_base import HFDualEncoderHandler, pooled


@register_backbone
class SiglipHandler(HFDualEncoderHandler):
    name = "transformers-siglip"
    class_name = "SiglipModel"
    use_attention_mask = False

    def loading_snippet(self, directory: str, info: dict[str, Any]) -> str:
        return (
            super().loading_snippet(directory, info)
            + '\n# texts: tokenizer(texts, padding="max_length", max_length=64); ids only, no attention_mask'
            + "\n# p = sigmoid(model.logit_scale.exp() * f @ g.T + model.logit_bias)"
        )


def patchify(images: torch.Tensor, patch_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``[B, C, H, W]`` → (patches ``[B, N, p·p·C]``, mask ``[B, N]`` of ones, grid ``[B, 2]`` = (H/p, W/p)).

    The order is ``Siglip2ImageProcessor``'s: patches row-major over the grid, each patch flattened as
    (row in patch, column in patch, channel).
    """
    b, c, h, w = images.shape
    if h % patch_size or w % patch_size:
        raise ValueError(f"SigLIP2: image size {h}×{w} is not a multiple of the patch size {patch_size}")
    nh, nw = h // patch_size, w // patch_size
    patches = images.reshape(b, c, nh, patch_size, nw, patch_size).permute(0, 2, 4, 3, 5, 1)
    patches = patches.reshape(b, nh * nw, patch_size * patch_size * c)
    mask = torch.ones(b, nh * nw, dtype=torch.int32, device=images.device)
    grid = torch.tensor([[nh, nw]] * b, dtype=torch.long, device=images.device)
    return patches, mask, grid


@register_backbone
class Siglip2Handler(SiglipHandler):
    name = "transformers-siglip2"
    class_name = "Siglip2Model"

    def encode_image(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        if images.dim() == 3:  # already patchified by the processor: every patch valid, square grid
            raise ValueError(
                "Siglip2Model: pass [B, C, H, W] images to radapter (it patchifies them); got a [B, N, D] tensor"
            )
        patches, mask, grid = patchify(images, model.config.vision_config.patch_size)
        out = model.get_image_features(pixel_values=patches, pixel_attention_mask=mask, spatial_shapes=grid)
        return pooled(out)
