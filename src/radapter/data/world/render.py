"""Vectorised rasteriser: silhouettes -> RGB images in one of the world's styles.

All randomness comes from the `numpy.random.Generator` passed in, drawn in a fixed order per chunk
of `CHUNK` images, so the same generator state gives the same bytes. Arithmetic is float32 torch on
CPU (deterministic there), quantised to uint8 at the end.

Pipeline per chunk:
1. pixel centres at `supersample`x resolution -> canonical shape coordinates via the inverse of each
   image's scale s, rotation theta and shift t:  (u, v) = R(-theta) (x - t) / s;
2. inside/outside masks from `shapes.SHAPES`, an outline band = dilate(mask) - erode(mask) where a
   style needs strokes; both are box-averaged down to the output size (anti-aliasing);
3. compositing per domain:
   - photo: object colour with a soft lighting gradient on a grey, slightly tinted background of
     contrasting brightness with weak low-frequency texture (the "background" of a photo);
   - cartoon: flat object colour, outline in a dark shade of it, flat pastel background;
   - sketch: coloured pencil outline only, on paper-white;
   - inverted: photo, then 1 - x;
   - noisy: photo plus i.i.d. Gaussian pixel noise;
   - lowcontrast: photo with contrast scaled down around a random grey level.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .shapes import SHAPES
from .spec import COLOURS, WorldSpec

CHUNK = 512
_PHOTO_LIKE = ("photo", "inverted", "noisy", "lowcontrast")
_OUTLINE_PX = 1.25  # stroke width of outlines (cartoon, sketch) in output pixels
_PARAM_KEYS = ("scale", "shift", "rotation_deg", "light_dir", "bg_level")


def render(
    spec: WorldSpec,
    labels: np.ndarray,
    domains: np.ndarray,
    colours: np.ndarray,
    rng: np.random.Generator,
    return_params: bool = False,
) -> np.ndarray | tuple[np.ndarray, dict[str, np.ndarray]]:
    """Renders images for per-sample class, domain and colour indices.

    Args:
        spec: the world.
        labels, domains, colours: int arrays [N] indexing `spec.classes`, `spec.domains`, `spec.colours`.
        rng: source of all randomness (geometry, jitter, textures, noise).
        return_params: also return what was drawn for each image (the images and the generator's state
            afterwards are the same either way).

    Returns:
        uint8 array [N, H, W, 3]; with `return_params`, also a dict of float64 arrays aligned on axis 0:
        "scale" [N] (object extent / frame), "shift" [N, 2] (centre offset (x right, y up) in frame units,
        the frame spanning [-1, 1]), "rotation_deg" [N] (counter-clockwise), "light_dir" [N] (radians),
        "bg_level" [N] (in [0, 1], the photo background's position within its brightness range).
    """
    n = len(labels)
    out = np.empty((n, spec.image_size, spec.image_size, 3), dtype=np.uint8)
    params: dict[str, list[np.ndarray]] = {k: [] for k in _PARAM_KEYS}
    # One intra-op thread: these element-wise ops gain little from threads, and on a busy machine
    # OpenMP's waiting threads made rendering 5-60x slower. Results do not depend on the thread count.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for start in range(0, n, CHUNK):
            sl = slice(start, min(start + CHUNK, n))
            out[sl], drawn = _render_chunk(spec, labels[sl], domains[sl], colours[sl], rng)
            for k in _PARAM_KEYS:
                params[k].append(drawn[k])
    finally:
        torch.set_num_threads(threads)
    if not return_params:
        return out
    empty = {"shift": np.zeros((0, 2))}
    return out, {k: np.concatenate(v) if v else empty.get(k, np.zeros(0)) for k, v in params.items()}


def _render_chunk(
    spec: WorldSpec, labels: np.ndarray, domains: np.ndarray, colours: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    n, size, ss = len(labels), spec.image_size, spec.supersample
    big = size * ss
    # --- per-image random parameters (fixed draw order) ---
    scale = rng.uniform(*spec.object_size, size=n)
    max_t = np.minimum(spec.max_shift, (1.0 - scale) / 2 + 0.05)  # keep big objects mostly in frame
    shift = rng.uniform(-1, 1, size=(n, 2)) * max_t[:, None] * 2  # frame spans [-1, 1]: x2
    theta = np.deg2rad(rng.uniform(-spec.max_rotation_deg, spec.max_rotation_deg, size=n))
    palette = np.array([COLOURS[c] for c in spec.colours], dtype=np.float32)
    colour = np.clip(palette[colours] + rng.normal(0, 0.03, size=(n, 3)), 0, 1)
    light_dir = rng.uniform(0, 2 * math.pi, size=n)
    bg_level = rng.uniform(0, 1, size=n)
    bg_tint = rng.normal(0, 0.04, size=(n, 3))
    texture = rng.normal(0, 1, size=(n, 1, 4, 4))
    grain = rng.normal(0, 1, size=(n, size, size, 1))
    pastel = rng.uniform(0.72, 1.0, size=(n, 3))
    paper = rng.uniform(0.86, 1.0, size=n)
    noise = rng.normal(0, 1, size=(n, size, size, 3))
    grey = rng.uniform(0.35, 0.65, size=n)

    # --- geometry: canonical coordinates of every sub-pixel centre ---
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    axis = (torch.arange(big, dtype=torch.float32) + 0.5) / big * 2 - 1
    x = axis.view(1, 1, big)
    y = -axis.view(1, big, 1)  # image rows go down, v goes up
    s, th, sh = t(scale).view(n, 1, 1), t(theta).view(n, 1, 1), t(shift)
    dx, dy = x - sh[:, 0].view(n, 1, 1), y - sh[:, 1].view(n, 1, 1)
    cos, sin = torch.cos(th), torch.sin(th)
    u = (cos * dx + sin * dy) / s
    v = (-sin * dx + cos * dy) / s

    mask_big = torch.zeros(n, big, big)
    for k, name in enumerate(spec.classes):
        idx = torch.from_numpy(np.flatnonzero(labels == k))
        if len(idx):
            mask_big[idx] = SHAPES[name](u[idx], v[idx]).float()
    mask = F.avg_pool2d(mask_big[:, None], ss)[:, 0, :, :, None]  # [n, H, W, 1]

    names = np.array(spec.domains)[domains]
    needs_band = np.isin(names, ("cartoon", "sketch"))
    band = torch.zeros_like(mask)
    if needs_band.any():
        idx = torch.from_numpy(np.flatnonzero(needs_band))
        r = max(1, round(_OUTLINE_PX * ss / 2))
        m = mask_big[idx][:, None]
        dil = F.max_pool2d(m, 2 * r + 1, stride=1, padding=r)
        ero = -F.max_pool2d(-m, 2 * r + 1, stride=1, padding=r)
        band[idx] = F.avg_pool2d(dil - ero, ss)[:, 0, :, :, None]

    # --- compositing ---
    col = t(colour).view(n, 1, 1, 3)
    img = torch.empty(n, size, size, 3)

    photo_like = np.isin(names, _PHOTO_LIKE)
    if photo_like.any():
        i = torch.from_numpy(np.flatnonzero(photo_like))
        # lighting: +-12 % brightness gradient across the object along a random direction
        ld = t(light_dir)[i].view(-1, 1, 1, 1)
        pax = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1
        px, py = pax.view(1, 1, size, 1), -pax.view(1, size, 1, 1)
        shade = 1 + 0.12 * (torch.cos(ld) * px + torch.sin(ld) * py)
        obj = (col[i] * shade).clamp(0, 1)
        # background: grey of contrasting brightness, slight tint, weak texture and grain
        lum = (col[i] * torch.tensor([0.299, 0.587, 0.114])).sum(-1, keepdim=True)
        lvl = t(bg_level)[i].view(-1, 1, 1, 1)
        base = torch.where(lum > 0.5, 0.08 + 0.27 * lvl, 0.62 + 0.30 * lvl)
        tex = F.interpolate(t(texture)[i], size=(size, size), mode="bilinear", align_corners=False)
        bg = base + t(bg_tint)[i].view(-1, 1, 1, 3) + spec.texture_amplitude * tex.permute(0, 2, 3, 1)
        bg = (bg + 0.015 * t(grain)[i]).clamp(0, 1)
        m = mask[i]
        img[i] = m * obj + (1 - m) * bg

    for name in np.unique(names):
        i = torch.from_numpy(np.flatnonzero(names == name))
        if name == "cartoon":
            m, b = mask[i], band[i]
            flat = m * col[i] + (1 - m) * t(pastel)[i].view(-1, 1, 1, 3)
            img[i] = flat * (1 - b) + 0.3 * col[i] * b  # outline: a dark shade of the fill
        elif name == "sketch":
            b = band[i]
            bg = t(paper)[i].view(-1, 1, 1, 1) + 0.02 * t(grain)[i]
            img[i] = bg * (1 - b) + 0.7 * col[i] * b
        elif name == "inverted":
            img[i] = 1 - img[i]
        elif name == "noisy":
            img[i] = img[i] + spec.noise_sigma * t(noise)[i]
        elif name == "lowcontrast":
            img[i] = t(grey)[i].view(-1, 1, 1, 1) + spec.low_contrast * (img[i] - 0.5)
    drawn = {
        "scale": scale,
        "shift": shift,
        "rotation_deg": np.rad2deg(theta),
        "light_dir": light_dir,
        "bg_level": bg_level,
    }
    return (img.clamp(0, 1) * 255).round().to(torch.uint8).numpy(), drawn
