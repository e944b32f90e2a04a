"""A CAT-Seg-style open-vocabulary segmenter in plain PyTorch — CAT-Seg's design, not CAT-Seg's code.

    images ──► CLIP image tower (dense last block, any size) ──► f [B, D, h, w] (+ two intermediate blocks)
    class names ──► CLIP text tower (templates, synonyms) ──► t [K, D]
    cost C[b, k] = cos(f_b, t_k) [B, K, h, w] ──► SegHead (no per-class weights) ──► logits [B, K, 4h, 4w]

Training: ``loss = segmenter.loss(segmenter(images, names), labels)`` on crops; the CLIP's trainable part is
decided outside (frozen, :func:`~radapter.segmentation.finetune.select_clip_trainable`, R-Adapter, LoRA) and text
features follow it (recomputed with gradient while the text tower trains, cached otherwise). Inference:
:meth:`Segmenter.predict` returns class scores at any output size, optionally by CAT-Seg's sliding window with a
global view. Nothing here assumes CUDA: tensors follow the CLIP's device.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .dense import DenseFeatures, dense_features, vision_info
from .head import SegHead, SegHeadConfig
from .losses import LOSSES, segmentation_loss
from .text import CATSEG_TEMPLATES, TextFeatureBank

__all__ = ["Segmenter", "SegmenterConfig", "sliding_window_scores"]


@dataclass
class SegmenterConfig:
    """Everything but the CLIP (defaults: CAT-Seg's ViT-B/16 recipe)."""

    head: SegHeadConfig = field(default_factory=SegHeadConfig, metadata={"help": "aggregation head sizes"})
    templates: tuple[str, ...] = field(default=CATSEG_TEMPLATES, metadata={"help": "prompt templates ({} = class)"})
    synonyms: str = field(default="mean", metadata={"help": "comma-separated synonyms: mean or first"})
    input_size: int | None = field(
        default=384, metadata={"help": "side the CLIP sees (384 for ViT-B/16 in CAT-Seg); None: the image's size"}
    )
    guidance_layers: tuple[int, int] | None = field(
        default=None, metadata={"help": "CLIP blocks guiding the decoder; default (L/3 - 1, 2L/3 - 1), (3, 7) for 12"}
    )
    dense_residual: str = field(default="auto", metadata={"help": "dense last block residual: auto, cls, token, none"})
    loss: str = field(default="bce", metadata={"help": "bce (CAT-Seg) or ce"})
    ignore_index: int = field(default=255, metadata={"help": "label of unlabelled pixels"})
    sliding_window: bool = field(default=False, metadata={"help": "sliding-window inference"})
    window: int | None = field(default=None, metadata={"help": "window side (default: input_size)"})
    overlap: float = field(default=1 / 3, metadata={"help": "window overlap fraction (CAT-Seg 0.333)"})
    sliding_resize: int | None = field(default=640, metadata={"help": "resize to S×S before sliding (CAT-Seg 640)"})
    global_view: bool = field(default=True, metadata={"help": "average windows with a whole-image pass"})

    def __post_init__(self) -> None:
        if isinstance(self.head, dict):
            self.head = SegHeadConfig(**self.head)
        self.templates = tuple(self.templates)
        if self.loss not in LOSSES:
            raise ValueError(f"SegmenterConfig.loss must be one of {LOSSES}, got {self.loss!r}")
        if not 0.0 <= self.overlap < 1.0:
            raise ValueError(f"SegmenterConfig.overlap must be in [0, 1), got {self.overlap}")
        if self.guidance_layers is not None:
            self.guidance_layers = tuple(int(i) for i in self.guidance_layers)
            if len(self.guidance_layers) != 2:
                raise ValueError(f"SegmenterConfig.guidance_layers needs two block indices, got {self.guidance_layers}")

    def to_dict(self) -> dict:
        return asdict(self)


def sliding_window_scores(
    score_fn: Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    window: int,
    overlap: float = 1 / 3,
    global_view: bool = True,
    resize: int | None = None,
    batch_size: int = 8,
) -> torch.Tensor:
    """CAT-Seg's sliding-window inference for one image.

    The image (optionally resized to ``resize``×``resize``) is covered by ``window``-sized crops with stride
    ``int(window · (1 − overlap))`` (the last crop is aligned to the border); crop scores are averaged where crops
    overlap; with ``global_view`` the result is averaged 1:1 with the scores of the whole image.

    Args:
        score_fn: ``[N, 3, h, w] -> [N, K, h, w]`` class probabilities at the input's size.
        image: [B, 3, H, W]: one image, or B images of one size (their crops are scored together).
        batch_size: Crops per ``score_fn`` call (at least one window position of all B images).

    Returns:
        [B, K, H', W'] scores at the (resized) image size.
    """
    if resize is not None:
        image = F.interpolate(image, size=(resize, resize), mode="bilinear", align_corners=False)
    _, _, h, w = image.shape
    stride = max(1, int(window * (1 - overlap)))

    def starts(n: int) -> list[int]:
        if n <= window:
            return [0]
        s = list(range(0, n - window + 1, stride))
        return s if s[-1] + window >= n else s + [n - window]

    boxes = [(y, x) for y in starts(h) for x in starts(w)]
    wh, ww = min(window, h), min(window, w)
    b = image.shape[0]
    per_call = max(1, batch_size // b)  # window positions per call; each brings the crops of all B images
    total = count = None
    for i in range(0, len(boxes), per_call):
        chunk = boxes[i : i + per_call]
        crops = torch.cat([image[:, :, y : y + wh, x : x + ww] for y, x in chunk])  # position-major
        scores = score_fn(crops)
        if total is None:
            total = scores.new_zeros(b, scores.shape[1], h, w)
            count = scores.new_zeros(1, 1, h, w)
        for (y, x), s in zip(chunk, scores.split(b)):
            total[:, :, y : y + wh, x : x + ww] += s
            count[:, :, y : y + wh, x : x + ww] += 1
    local = total / count
    if not global_view:
        return local
    return (local + score_fn(image)) / 2


class Segmenter(nn.Module):
    """CLIP + aggregation head.

    Args:
        clip: open_clip ``CLIP`` or ``transformers.CLIPModel`` (plain, R-Adapted, LoRA'd or merged).
        tokenizer: ``list[str] -> token batch`` for the text tower.
        config: :class:`SegmenterConfig`.
        head: An existing head to share (e.g. evaluating merged variants); default a new one.
    """

    def __init__(
        self,
        clip: nn.Module,
        tokenizer: Callable[[list[str]], object],
        config: SegmenterConfig | None = None,
        head: SegHead | None = None,
    ):
        super().__init__()
        self.config = cfg = config or SegmenterConfig()
        self.clip = clip
        self.tokenizer = tokenizer
        self.info = vision_info(clip)
        n = self.info.layers
        gl = cfg.guidance_layers if cfg.guidance_layers is not None else (max(0, n // 3 - 1), max(0, 2 * n // 3 - 1))
        self.guidance_layers = tuple(i % n for i in gl)
        self.head = head if head is not None else SegHead(cfg.head, self.info.embed_dim, self.info.width)
        device = next(clip.parameters()).device
        self.head.to(device)
        self.text_bank = TextFeatureBank(clip, tokenizer, cfg.templates, cfg.synonyms)

    def with_clip(self, clip: nn.Module) -> Segmenter:
        """A segmenter on another CLIP (e.g. a merged copy) sharing this one's head and config."""
        return Segmenter(clip, self.tokenizer, copy.deepcopy(self.config), head=self.head)

    # --- features -------------------------------------------------------------------------------------------
    def _clip_input(self, images: torch.Tensor) -> torch.Tensor:
        p = self.info.patch
        if self.config.input_size is not None:
            size = (self.config.input_size, self.config.input_size)
        else:
            size = (max(p, round(images.shape[-2] / p) * p), max(p, round(images.shape[-1] / p) * p))
        if tuple(images.shape[-2:]) != size:
            images = F.interpolate(images, size=size, mode="bilinear", align_corners=False)
        return images

    def text_features(self, class_names: Sequence[str]) -> torch.Tensor:
        """[K, D] normalised class embeddings (recomputed while the text tower trains, cached otherwise)."""
        return self.text_bank(class_names)

    def dense(self, images: torch.Tensor) -> DenseFeatures:
        """Dense features and decoder guidance of normalised images (resized to the CLIP input size)."""
        return dense_features(self.clip, self._clip_input(images), self.guidance_layers, self.config.dense_residual)

    @staticmethod
    def cost(features: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Cosine cost volume [B, K, h, w] of features [B, D, h, w] and text [K, D]."""
        return torch.einsum("bdhw,kd->bkhw", F.normalize(features, dim=1), F.normalize(text, dim=-1))

    def cost_volume(self, images: torch.Tensor, class_names: Sequence[str]) -> torch.Tensor:
        """[B, K, h, w] cosine similarities of patches and classes."""
        return self.cost(self.dense(images).features, self.text_features(class_names))

    # --- training -------------------------------------------------------------------------------------------
    def forward(self, images: torch.Tensor, class_names: Sequence[str]) -> torch.Tensor:
        """Logits [B, K, 4h, 4w] of normalised images [B, 3, H, W] for a vocabulary of K names."""
        dense = self.dense(images)
        text = self.text_features(class_names)
        cost = self.cost(dense.features, text)
        return self.head(cost, text, dense.features, dense.intermediates)

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The configured per-pixel loss (logits resized to the labels)."""
        return segmentation_loss(logits, target, self.config.loss, self.config.ignore_index)

    # --- inference ------------------------------------------------------------------------------------------
    def scores(self, images: torch.Tensor, class_names: Sequence[str]) -> torch.Tensor:
        """Class probabilities [B, K, H, W] at the images' size (sigmoid for BCE, softmax for CE)."""
        logits = F.interpolate(self(images, class_names), size=images.shape[-2:], mode="bilinear", align_corners=False)
        return logits.sigmoid() if self.config.loss == "bce" else logits.softmax(dim=1)

    def _scores_chunked(self, images: torch.Tensor, names: tuple[str, ...], batch_size: int) -> torch.Tensor:
        return torch.cat([self.scores(chunk, names) for chunk in images.split(max(1, batch_size))])

    def _predict_same_size(
        self, x: torch.Tensor, names: tuple[str, ...], size: tuple[int, int], batch_size: int
    ) -> torch.Tensor:
        """[B, K, *size] scores of B images of one size [B, 3, H, W] (whole image or sliding window)."""
        cfg = self.config
        if cfg.sliding_window:
            window = cfg.window or cfg.input_size or max(x.shape[-2:])
            s = sliding_window_scores(
                lambda t: self._scores_chunked(t, names, batch_size),
                x,
                window,
                cfg.overlap,
                cfg.global_view,
                cfg.sliding_resize,
                batch_size=max(batch_size, x.shape[0]),
            )
        else:
            s = self._scores_chunked(x, names, batch_size)
        if tuple(s.shape[-2:]) != size:
            s = F.interpolate(s, size=size, mode="bilinear", align_corners=False)
        return s

    @torch.no_grad()
    def predict(
        self, images: torch.Tensor | Sequence[torch.Tensor], class_names: Sequence[str], out_size=None
    ) -> list[torch.Tensor]:
        """Scores [K, H, W] per image, at ``out_size`` (default: each image's own size).

        Args:
            images: [B, 3, H, W] or a list of [3, H_i, W_i] (full-resolution evaluation images).
            class_names: The vocabulary (prompts).
            out_size: (H, W) for every image, or None.
        """
        imgs = list(images) if not torch.is_tensor(images) or images.dim() == 3 else list(images.unbind(0))
        if torch.is_tensor(images) and images.dim() == 3:
            imgs = [images]
        names = tuple(class_names)
        out = []
        for img in imgs:
            x = img[None]
            size = tuple(out_size) if out_size is not None else tuple(x.shape[-2:])
            out.append(self._predict_same_size(x, names, size, batch_size=8)[0])
        return out

    @torch.no_grad()
    def predict_batch(
        self, images: torch.Tensor, class_names: Sequence[str], out_size=None, batch_size: int = 64
    ) -> torch.Tensor:
        """Scores [B, K, H, W] of B images of one size [B, 3, H, W], computed together: what :meth:`predict` gives
        image by image, up to the float round-off of batched kernels (fast when a set's images share a size).

        Args:
            images: [B, 3, H, W] normalised images.
            class_names: The vocabulary (prompts).
            out_size: (H, W), default the images' size.
            batch_size: Images (or sliding-window crops) per forward pass.
        """
        size = tuple(out_size) if out_size is not None else tuple(images.shape[-2:])
        return self._predict_same_size(images, tuple(class_names), size, batch_size)
