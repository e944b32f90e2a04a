"""A CAT-Seg-style cost-aggregation head with no per-class parameters.

Input: the cosine cost volume ``C[b, k, i, j] = <f_b(i, j), t_k>`` between L2-normalised dense image features and
class text features, plus guidance (the dense features, the text features, two intermediate CLIP blocks).
Every operation either acts on one class's map at a time with weights shared by all classes, or mixes classes
by attention without any class positional embedding — so the head accepts any vocabulary size and permuting the
vocabulary permutes its output (Cho et al., CAT-Seg, CVPR 2024, §3):

1. **embedding**: a k×k convolution lifts each class's 1-channel cost map to ``hidden_dim`` channels;
2. **spatial aggregation** (per class): two Swin-style window-attention blocks (the second shifted by half a
   window), queries and keys conditioned on the projected dense image features (appearance guidance);
3. **class aggregation** (per location, on an average-pooled grid): attention across the K classes (linear
   attention by default), queries and keys conditioned on the projected text features; the pooled result is
   upsampled and added back, as in CAT-Seg's ``ClassTransformerLayer``;
4. **upsampling decoder** (per class): two ×2 transposed-convolution stages, each concatenated with an
   intermediate CLIP block's features (upsampled ×2 and ×4) and refined by two 3×3 convs; a 3×3 conv gives one
   logit per class and pixel at 4× the patch grid.

Differences from CAT-Seg's ``Aggregator``: no padding of the class axis to a fixed length (``pad_len``) and no
top-k class pruning; the guidance concatenation is computed as a sum of two linear maps (identical, without
materialising the K-fold copy); windows that do not tile the grid are padded and masked instead of asserting;
the appearance guidance is computed from L2-normalised dense features (CAT-Seg feeds them unnormalised), so its
scale does not follow the feature norm, which fine-tuning the image tower changes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SegHead", "SegHeadConfig"]


@dataclass
class SegHeadConfig:
    """Sizes of the aggregation head (defaults: CAT-Seg's ViT-B/16 configuration)."""

    hidden_dim: int = field(default=128, metadata={"help": "channels of the per-class cost embedding"})
    num_layers: int = field(default=2, metadata={"help": "aggregation layers (spatial + class block each)"})
    num_heads: int = field(default=4, metadata={"help": "attention heads"})
    window_size: int = field(default=12, metadata={"help": "spatial attention window (patches)"})
    pooling_size: int = field(default=2, metadata={"help": "average pooling before class attention"})
    attention: str = field(default="linear", metadata={"help": "class attention: linear or full"})
    text_proj_dim: int = field(default=128, metadata={"help": "projected text guidance"})
    appearance_proj_dim: int = field(default=128, metadata={"help": "projected appearance guidance"})
    decoder_dims: tuple[int, int] = field(default=(64, 32), metadata={"help": "decoder channels per stage"})
    decoder_guidance_dims: tuple[int, int] = field(default=(256, 128), metadata={"help": "upsampled CLIP features"})
    decoder_guidance_proj_dims: tuple[int, int] = field(default=(32, 16), metadata={"help": "their projections"})
    embed_kernel: int = field(default=7, metadata={"help": "kernel of the cost embedding conv"})
    mlp_ratio: float = field(default=4.0, metadata={"help": "MLP width / hidden_dim"})

    def __post_init__(self) -> None:
        if self.attention not in ("linear", "full"):
            raise ValueError(f"SegHeadConfig.attention must be 'linear' or 'full', got {self.attention!r}")
        if self.hidden_dim % self.num_heads:
            raise ValueError(f"hidden_dim {self.hidden_dim} is not divisible by num_heads {self.num_heads}")
        self.decoder_dims = tuple(self.decoder_dims)
        self.decoder_guidance_dims = tuple(self.decoder_guidance_dims)
        self.decoder_guidance_proj_dims = tuple(self.decoder_guidance_proj_dims)
        g0, g1 = self.decoder_guidance_proj_dims
        if g0 >= self.hidden_dim or g1 >= self.decoder_dims[0]:
            raise ValueError(
                f"decoder_guidance_proj_dims {self.decoder_guidance_proj_dims} must be smaller than the channels they "
                f"join (hidden_dim {self.hidden_dim}, decoder_dims[0] {self.decoder_dims[0]})"
            )

    def to_dict(self) -> dict:
        return asdict(self)


class _Mlp(nn.Sequential):
    def __init__(self, dim: int, ratio: float):
        super().__init__(nn.Linear(dim, int(dim * ratio)), nn.GELU(), nn.Linear(int(dim * ratio), dim))


def _region_ids(hp: int, wp: int, h: int, w: int, ws: int, shift: int, device) -> torch.Tensor:
    """[hp, wp] ids in the (rolled) frame: tokens attend only to tokens with the same id inside a window."""
    ids = torch.zeros(hp, wp, dtype=torch.long, device=device)
    if shift:
        cnt = 0
        for hs in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
            for wsl in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
                ids[hs, wsl] = cnt
                cnt += 1
    pad = torch.zeros(hp, wp, dtype=torch.long, device=device)
    pad[h:, :] = 1
    pad[:, w:] = 1
    if shift:
        pad = torch.roll(pad, shifts=(-shift, -shift), dims=(0, 1))
    return ids + 100 * pad


def _windows(x: torch.Tensor, ws: int) -> torch.Tensor:
    """[N, H, W, C] -> [N · nW, ws·ws, C]."""
    n, h, w, c = x.shape
    x = x.view(n, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, c)


def _unwindows(x: torch.Tensor, ws: int, n: int, h: int, w: int) -> torch.Tensor:
    c = x.shape[-1]
    x = x.view(n, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(n, h, w, c)


class SpatialBlock(nn.Module):
    """Window self-attention over one class's map, q/k conditioned on appearance guidance; then an MLP."""

    def __init__(self, dim: int, guidance_dim: int, heads: int, window: int, shift: bool, mlp_ratio: float):
        super().__init__()
        self.heads, self.window, self.shift = heads, window, shift
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        # Linear(cat[x, g]) = W_x x + W_g g: the guidance part is computed once per image, not once per class.
        self.qg = nn.Linear(guidance_dim, dim, bias=False) if guidance_dim else None
        self.kg = nn.Linear(guidance_dim, dim, bias=False) if guidance_dim else None
        self.proj = nn.Linear(dim, dim)
        self.mlp = _Mlp(dim, mlp_ratio)

    def forward(self, x: torch.Tensor, guidance: torch.Tensor | None) -> torch.Tensor:
        """x: [B, K, h, w, C]; guidance: [B, h, w, Cg] or None."""
        b, k, h, w, c = x.shape
        ws = self.window if max(h, w) > self.window else None
        y = self.norm1(x)
        q, kk, v = self.q(y), self.k(y), self.v(y)
        if self.qg is not None and guidance is not None:
            q = q + self.qg(guidance)[:, None]
            kk = kk + self.kg(guidance)[:, None]
        q, kk, v = (t.reshape(b * k, h, w, c) for t in (q, kk, v))
        if ws is None:  # the window covers the grid: global attention, no shift (as CAT-Seg)
            hp, wp, shift, mask = h, w, 0, None
            qw, kw, vw = (t.reshape(b * k, h * w, c) for t in (q, kk, v))
        else:
            shift = ws // 2 if self.shift else 0
            hp, wp = -(-h // ws) * ws, -(-w // ws) * ws
            if (hp, wp) != (h, w):
                q, kk, v = (F.pad(t, (0, 0, 0, wp - w, 0, hp - h)) for t in (q, kk, v))
            if shift:
                q, kk, v = (torch.roll(t, shifts=(-shift, -shift), dims=(1, 2)) for t in (q, kk, v))
            qw, kw, vw = (_windows(t, ws) for t in (q, kk, v))
            mask = None
            if shift or (hp, wp) != (h, w):
                ids = _windows(_region_ids(hp, wp, h, w, ws, shift, x.device)[None, ..., None], ws)[..., 0]
                mask = (ids[:, :, None] != ids[:, None, :]).to(x.dtype) * -1e4  # [nW, T, T]
        d = c // self.heads
        n_seq = b * k
        # [B·K, nW, heads, T, d]; the window mask [nW, 1, T, T] broadcasts over sequences and heads (no copy per class)
        qw, kw, vw = (t.reshape(n_seq, -1, t.shape[1], self.heads, d).transpose(2, 3) for t in (qw, kw, vw))
        out = F.scaled_dot_product_attention(qw, kw, vw, attn_mask=None if mask is None else mask[:, None])
        out = out.transpose(2, 3).reshape(-1, qw.shape[3], c)
        if ws is None:
            out = out.reshape(b * k, h, w, c)
        else:
            out = _unwindows(out, ws, b * k, hp, wp)
            if shift:
                out = torch.roll(out, shifts=(shift, shift), dims=(1, 2))
            out = out[:, :h, :w]
        x = x + self.proj(out).reshape(b, k, h, w, c)
        return x + self.mlp(self.norm2(x))


class ClassBlock(nn.Module):
    """Attention across classes at every (pooled) location, q/k conditioned on text guidance; no class position."""

    def __init__(self, dim: int, guidance_dim: int, heads: int, pool: int, attention: str, mlp_ratio: float):
        super().__init__()
        self.heads, self.pool, self.attention = heads, pool, attention
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.qg = nn.Linear(guidance_dim, dim, bias=False) if guidance_dim else None
        self.kg = nn.Linear(guidance_dim, dim, bias=False) if guidance_dim else None
        self.mlp = _Mlp(dim, mlp_ratio)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q, k, v: [N, K, H, d] -> [N, K, H, d]."""
        if self.attention == "full":
            out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
            return out.transpose(1, 2)
        # Linear attention (Katharopoulos et al., 2020) with φ(x) = elu(x) + 1, as CAT-Seg's LinearAttention.
        q, k = F.elu(q) + 1, F.elu(k) + 1
        n_k = v.shape[1]
        kv = torch.einsum("nshd,nshv->nhdv", k, v / n_k)
        z = 1 / (torch.einsum("nlhd,nhd->nlh", q, k.sum(dim=1)) + 1e-6)
        return torch.einsum("nlhd,nhdv,nlh->nlhv", q, kv, z) * n_k

    def forward(self, x: torch.Tensor, text: torch.Tensor | None) -> torch.Tensor:
        """x: [B, K, h, w, C]; text: [B, K, Ct] or None."""
        b, k, h, w, c = x.shape
        xp = x
        if self.pool > 1:
            xp = F.avg_pool2d(x.reshape(b * k, h, w, c).permute(0, 3, 1, 2), self.pool)
            xp = xp.permute(0, 2, 3, 1).reshape(b, k, xp.shape[-2], xp.shape[-1], c)
        hp, wp = xp.shape[2], xp.shape[3]
        tokens = xp.permute(0, 2, 3, 1, 4).reshape(b * hp * wp, k, c)  # one sequence of K classes per location
        y = self.norm1(tokens)
        q, kk, v = self.q(y), self.k(y), self.v(y)
        if self.qg is not None and text is not None:
            tq, tk = self.qg(text), self.kg(text)  # [B, K, C]
            rep = hp * wp
            q = q + tq.repeat_interleave(rep, dim=0)
            kk = kk + tk.repeat_interleave(rep, dim=0)
        d = c // self.heads
        out = self._attend(*(t.reshape(t.shape[0], k, self.heads, d) for t in (q, kk, v)))
        tokens = tokens + out.reshape(tokens.shape)
        tokens = tokens + self.mlp(self.norm2(tokens))
        xp = tokens.reshape(b, hp, wp, k, c).permute(0, 3, 4, 1, 2).reshape(b * k, c, hp, wp)
        if (hp, wp) != (h, w):
            xp = F.interpolate(xp, size=(h, w), mode="bilinear", align_corners=True)
        return x + xp.reshape(b, k, c, h, w).permute(0, 1, 3, 4, 2)


class _Up(nn.Module):
    """×2 transposed conv, concatenate guidance, two 3×3 conv + GroupNorm + ReLU."""

    def __init__(self, cin: int, cout: int, guidance: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cin - guidance if guidance else cin, kernel_size=2, stride=2)
        groups = max(1, cout // 16)
        self.conv = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.GroupNorm(groups, cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.GroupNorm(groups, cout),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor, guidance: torch.Tensor | None, k: int) -> torch.Tensor:
        x = self.up(x)
        if guidance is not None:
            x = torch.cat([x, guidance.repeat_interleave(k, dim=0)], dim=1)
        return self.conv(x)


class SegHead(nn.Module):
    """Cost volume -> per-class logits at 4× the patch grid.

    Args:
        config: Head sizes.
        embed_dim: D, the joint image–text dimension (text and appearance guidance inputs).
        vision_width: Width of the intermediate CLIP features (0: no decoder guidance).
    """

    def __init__(self, config: SegHeadConfig, embed_dim: int, vision_width: int):
        super().__init__()
        cfg = self.config = config
        hd = cfg.hidden_dim
        self.embed = nn.Conv2d(1, hd, cfg.embed_kernel, padding=cfg.embed_kernel // 2)
        self.text_proj = (
            nn.Sequential(nn.Linear(embed_dim, cfg.text_proj_dim), nn.ReLU()) if cfg.text_proj_dim else None
        )
        app = cfg.appearance_proj_dim
        self.appearance_proj = nn.Sequential(nn.Conv2d(embed_dim, app, 3, padding=1), nn.ReLU()) if app else None
        self.spatial = nn.ModuleList()
        self.classwise = nn.ModuleList()
        for _ in range(cfg.num_layers):
            self.spatial.append(
                nn.ModuleList(
                    SpatialBlock(hd, app, cfg.num_heads, cfg.window_size, shift, cfg.mlp_ratio)
                    for shift in (False, True)
                )
            )
            self.classwise.append(
                ClassBlock(hd, cfg.text_proj_dim, cfg.num_heads, cfg.pooling_size, cfg.attention, cfg.mlp_ratio)
            )
        gd, gp = cfg.decoder_guidance_dims, cfg.decoder_guidance_proj_dims
        self.guided = bool(vision_width) and all(gd) and all(gp)
        if self.guided:
            self.guidance_up = nn.ModuleList(
                [nn.ConvTranspose2d(vision_width, gd[0], 2, 2), nn.ConvTranspose2d(vision_width, gd[1], 4, 4)]
            )
            self.guidance_proj = nn.ModuleList(
                nn.Sequential(nn.Conv2d(d, p, 3, padding=1), nn.ReLU()) for d, p in zip(gd, gp)
            )
        g0, g1 = gp if self.guided else (0, 0)
        self.up1 = _Up(hd, cfg.decoder_dims[0], g0)
        self.up2 = _Up(cfg.decoder_dims[0], cfg.decoder_dims[1], g1)
        self.out = nn.Conv2d(cfg.decoder_dims[1], 1, 3, padding=1)

    def forward(
        self,
        cost: torch.Tensor,
        text: torch.Tensor,
        features: torch.Tensor,
        intermediates: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Aggregates a cost volume.

        Args:
            cost: [B, K, h, w] cosine similarities.
            text: [K, D] or [B, K, D] normalised text features.
            features: [B, D, h, w] dense image features (appearance guidance).
            intermediates: Two [B, width, h, w] CLIP block outputs (for ×2 and ×4 decoder stages).

        Returns:
            [B, K, 4h, 4w] logits.
        """
        b, k, h, w = cost.shape
        x = self.embed(cost.reshape(b * k, 1, h, w))  # [B·K, C, h, w]
        x = x.reshape(b, k, -1, h, w).permute(0, 1, 3, 4, 2)  # [B, K, h, w, C]
        app = None
        if self.appearance_proj is not None:
            app = self.appearance_proj(F.normalize(features, dim=1)).permute(0, 2, 3, 1)  # [B, h, w, Ca]
        tg = None
        if self.text_proj is not None:
            t = text if text.dim() == 3 else text[None].expand(b, -1, -1)
            tg = self.text_proj(t)
        for (s1, s2), cls_block in zip(self.spatial, self.classwise):
            x = s2(s1(x, app), app)
            x = cls_block(x, tg)
        x = x.permute(0, 1, 4, 2, 3).reshape(b * k, -1, h, w)
        g1 = g2 = None
        if self.guided:
            if not intermediates or len(intermediates) != 2:
                raise ValueError(
                    f"this head is guided by two intermediate CLIP feature maps; got {len(intermediates or [])}"
                )
            g1 = self.guidance_proj[0](self.guidance_up[0](intermediates[0]))
            g2 = self.guidance_proj[1](self.guidance_up[1](intermediates[1]))
        x = self.up1(x, g1, k)
        x = self.up2(x, g2, k)
        return self.out(x).reshape(b, k, 4 * h, 4 * w)
