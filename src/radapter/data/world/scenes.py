"""World scenes for open-vocabulary semantic segmentation: several world shapes per image, per-pixel labels.

A scene is a square canvas (default 64 px, twice the world CLIP's input) with 2–4 of the world's silhouettes
(:mod:`~radapter.data.world.shapes`), each of a world colour, turned and placed at random.

Layout. The shipped world CLIP saw one centred object filling 55–85 % of a 32 px image in pretraining; a
feasibility study (``scripts/probe_world_segmentation.py``) found its patch features carry no usable class
information when a 32 px view holds two objects, or when a 64 px scene is fed whole (interpolated positional
embedding) — zero-shot and trained-head mIoU stayed at chance. The default ``layout="grid"`` therefore puts at
most one object in each 32 px cell, sized and shifted within its cell exactly as the world's single-object images
(55–85 % of the cell, shift ≤ 15 %), over one background spanning the canvas; a segmenter then sees the scene
through CAT-Seg's sliding window with the CLIP's native 32 px window. ``layout="free"`` places objects anywhere
(sizes relative to the canvas, kept apart by ``min_separation``), later objects in front of earlier ones.

Styles follow the world's domains (:mod:`~radapter.data.world.render`, re-implemented here for several objects
and a painter's order): photo (shaded colour on textured grey), cartoon (flat colour, dark outline, pastel
background), sketch (coloured outline on paper, interiors paper-white), inverted, noisy, low contrast.

Labels: each output pixel takes the class of whatever covers most of it at the supersampled resolution (the
front-most object, or background); background pixels are ``ignore_index`` (default), or their own class
``num_classes`` with ``background="class"``. Label values are indices into ``spec.world.classes``.

Determinism: every function takes a seed and uses only ``numpy.random.default_rng`` generators made from it;
same seed and spec -> same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .datasets import WORLD_MEAN, WORLD_STD, images_to_tensor
from .shapes import SHAPES
from .spec import COLOURS, WorldSpec

__all__ = [
    "SceneSpec",
    "WorldSceneDataset",
    "WorldScenes",
    "default_seen_classes",
    "generate_scenes",
    "segmentation_benchmark",
]

CHUNK = 64
_SCENE_STREAM = 7  # independent of generate.py's streams (0-4)


@dataclass(frozen=True)
class SceneSpec:
    """Parameters of world scenes (geometry in fractions of the canvas side)."""

    world: WorldSpec = field(default_factory=WorldSpec, metadata={"help": "classes, domains, colours"})
    image_size: int = field(default=64, metadata={"help": "canvas side in pixels"})
    supersample: int = field(default=2, metadata={"help": "anti-aliasing factor of the raster"})
    layout: str = field(default="grid", metadata={"help": "grid: one object per cell at most; free: anywhere"})
    cell: int = field(default=32, metadata={"help": "cell side in pixels (grid layout)"})
    objects: tuple[int, int] = field(default=(2, 4), metadata={"help": "min and max objects per scene"})
    object_size: tuple[float, float] = field(
        default=(0.55, 0.85), metadata={"help": "object extent / cell side (grid) or / canvas side (free)"}
    )
    max_shift: float = field(default=0.15, metadata={"help": "max centre shift / cell side (grid layout)"})
    max_rotation_deg: float = field(default=15.0, metadata={"help": "max rotation in degrees"})
    min_separation: float = field(default=0.75, metadata={"help": "free layout: centre distance / sum of extents"})
    background: str = field(default="ignore", metadata={"help": "background label: ignore or class"})
    ignore_index: int = field(default=255, metadata={"help": "label of ignored pixels"})

    def __post_init__(self) -> None:
        if self.background not in ("ignore", "class"):
            raise ValueError(f"SceneSpec.background must be 'ignore' or 'class', got {self.background!r}")
        lo, hi = self.objects
        if not 1 <= lo <= hi:
            raise ValueError(f"SceneSpec.objects must be 1 <= min <= max, got {self.objects}")
        if self.layout not in ("grid", "free"):
            raise ValueError(f"SceneSpec.layout must be 'grid' or 'free', got {self.layout!r}")
        if self.layout == "grid":
            if self.image_size % self.cell:
                raise ValueError(f"SceneSpec.image_size {self.image_size} is not a multiple of cell {self.cell}")
            if hi > self.cells:
                raise ValueError(f"{hi} objects do not fit {self.cells} cells (one object per cell)")
        if hi > self.world.num_classes:
            raise ValueError(f"at most {self.world.num_classes} objects per scene (distinct classes), got {hi}")
        if not self.world.num_classes < self.ignore_index <= 255:
            raise ValueError(
                f"ignore_index must be in {self.world.num_classes + 1}..255 (labels are uint8 and 0..{self.world.num_classes} "
                f"are class / background ids), got {self.ignore_index}"
            )

    @property
    def cells(self) -> int:
        """Number of cells of the grid layout."""
        return (self.image_size // self.cell) ** 2

    @property
    def background_label(self) -> int:
        return self.ignore_index if self.background == "ignore" else self.world.num_classes


@dataclass
class WorldScenes:
    """Scenes with per-pixel labels (arrays aligned on axis 0).

    Attributes:
        images: uint8 [N, H, W, 3].
        labels: uint8 [N, H, W], class indices into ``spec.world.classes`` or the background label.
        domains: int64 [N], indices into ``spec.world.domains``.
        objects: int64 [N, M_max], classes of the objects back to front, -1 where a scene has fewer.
        spec: The scene spec.
    """

    images: np.ndarray
    labels: np.ndarray
    domains: np.ndarray
    objects: np.ndarray
    spec: SceneSpec

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index) -> WorldScenes:
        index = np.asarray(index)
        return WorldScenes(self.images[index], self.labels[index], self.domains[index], self.objects[index], self.spec)


def _place(rng: np.random.Generator, sizes: np.ndarray, min_sep: float) -> np.ndarray:
    """Centres [M, 2] in the [-1, 1] frame keeping each object mostly inside and apart (best of 20 draws)."""
    centres = np.zeros((len(sizes), 2))
    for j, s in enumerate(sizes):
        lim = max(0.0, 1.0 - 0.9 * s)
        best, best_gap = None, -np.inf
        for _ in range(20):
            c = rng.uniform(-lim, lim, size=2)
            gap = min((np.linalg.norm(c - centres[i]) / (min_sep * (s + sizes[i])) for i in range(j)), default=np.inf)
            if gap >= 1.0:
                best = c
                break
            if gap > best_gap:
                best, best_gap = c, gap
        centres[j] = best
    return centres


def generate_scenes(
    spec: SceneSpec | None = None,
    n: int = 256,
    seed: int | Sequence[int] = 0,
    domains: Sequence[str] | None = None,
    classes: Sequence[int] | None = None,
) -> WorldScenes:
    """Samples ``n`` scenes, domains balanced, object classes drawn without replacement from ``classes``.

    Args:
        spec: Scene parameters (default ``SceneSpec()``).
        n: Number of scenes.
        seed: int or sequence of ints for ``numpy.random.default_rng``.
        domains: Domain names to draw from (balanced); default all.
        classes: Class indices objects may take (default all); e.g. the seen classes for training scenes.
    """
    spec = spec or SceneSpec()
    world = spec.world
    dom_ids = np.array([world.domain_index(d) for d in (domains or world.domains)], dtype=np.int64)
    pool = np.arange(world.num_classes) if classes is None else np.array(sorted({int(c) for c in classes}))
    if len(pool) == 0 or pool.min() < 0 or pool.max() >= world.num_classes:
        raise ValueError(f"classes must be indices into the {world.num_classes} world classes, got {list(pool)}")
    lo, hi = spec.objects
    hi_eff = min(hi, len(pool))
    rng = np.random.default_rng(seed)
    doms = dom_ids[rng.permutation(np.arange(n) % len(dom_ids))]
    counts = rng.integers(min(lo, hi_eff), hi_eff + 1, size=n)
    objects = np.full((n, hi), -1, dtype=np.int64)
    colours = np.zeros((n, hi), dtype=np.int64)
    sizes = np.zeros((n, hi))
    centres = np.zeros((n, hi, 2))
    g = spec.image_size // spec.cell
    for i in range(n):
        m = counts[i]
        objects[i, :m] = rng.choice(pool, size=m, replace=False)
        colours[i, :m] = rng.integers(len(world.colours), size=m)
        sizes[i, :m] = rng.uniform(*spec.object_size, size=m)
        if spec.layout == "grid":
            # as the world's single-object images, inside a cell: shift <= max_shift of the cell, less for big objects
            cells = rng.choice(g * g, size=m, replace=False)
            max_t = np.minimum(spec.max_shift, (1.0 - sizes[i, :m]) / 2 + 0.05)
            shift = rng.uniform(-1, 1, size=(m, 2)) * max_t[:, None] * 2 / g
            col, row = cells % g, cells // g
            centres[i, :m, 0] = -1 + (2 * col + 1) / g + shift[:, 0]
            centres[i, :m, 1] = 1 - (2 * row + 1) / g + shift[:, 1]
            sizes[i, :m] /= g
        else:
            centres[i, :m] = _place(rng, sizes[i, :m], spec.min_separation)
    images = np.empty((n, spec.image_size, spec.image_size, 3), dtype=np.uint8)
    labels = np.empty((n, spec.image_size, spec.image_size), dtype=np.uint8)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # element-wise work: threads gain little and slow down a busy machine
    try:
        for start in range(0, n, CHUNK):
            sl = slice(start, min(start + CHUNK, n))
            images[sl], labels[sl] = _render(spec, objects[sl], colours[sl], sizes[sl], centres[sl], doms[sl], rng)
    finally:
        torch.set_num_threads(threads)
    return WorldScenes(images, labels, doms, objects, spec)


def _render(spec, objects, colours, sizes, centres, doms, rng) -> tuple[np.ndarray, np.ndarray]:
    n, m = objects.shape
    size, ss = spec.image_size, spec.supersample
    big = size * ss
    world = spec.world
    # --- per-scene / per-object random parameters (fixed draw order) ---
    theta = np.deg2rad(rng.uniform(-spec.max_rotation_deg, spec.max_rotation_deg, size=(n, m)))
    palette = np.array([COLOURS[c] for c in world.colours], dtype=np.float32)
    colour = np.clip(palette[colours] + rng.normal(0, 0.03, size=(n, m, 3)), 0, 1).astype(np.float32)
    light = rng.uniform(0, 2 * math.pi, size=(n, m))
    bg_level = rng.uniform(0, 1, size=n)
    bg_tint = rng.normal(0, 0.04, size=(n, 3))
    texture = rng.normal(0, 1, size=(n, 1, 4, 4))
    grain = rng.normal(0, 1, size=(n, size, size, 1))
    pastel = rng.uniform(0.72, 1.0, size=(n, 3))
    paper = rng.uniform(0.86, 1.0, size=n)
    noise = rng.normal(0, 1, size=(n, size, size, 3))
    grey = rng.uniform(0.35, 0.65, size=n)

    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    axis = (torch.arange(big, dtype=torch.float32) + 0.5) / big * 2 - 1
    x, y = axis.view(1, 1, 1, big), -axis.view(1, 1, big, 1)
    c = t(centres)
    dx, dy = x - c[..., 0, None, None], y - c[..., 1, None, None]
    th = t(theta)[..., None, None]
    s = t(np.maximum(sizes, 1e-6))[..., None, None]
    u = (torch.cos(th) * dx + torch.sin(th) * dy) / s
    v = (-torch.sin(th) * dx + torch.cos(th) * dy) / s
    masks = torch.zeros(n, m, big, big, dtype=torch.bool)
    for k, name in enumerate(world.classes):
        sel = torch.from_numpy(objects == k)
        if sel.any():
            masks[sel] = SHAPES[name](u[sel], v[sel])
    names = np.array(world.domains)[doms]
    outlined = np.isin(names, ("cartoon", "sketch"))
    bands = torch.zeros_like(masks)
    if outlined.any():
        idx = torch.from_numpy(np.flatnonzero(outlined))
        r = max(1, round(1.25 * ss / 2))
        mk = masks[idx].float().reshape(-1, 1, big, big)
        dil = F.max_pool2d(mk, 2 * r + 1, stride=1, padding=r)
        ero = -F.max_pool2d(-mk, 2 * r + 1, stride=1, padding=r)
        bands[idx] = (dil - ero).reshape(len(idx), m, big, big) > 0.5

    # --- labels: front-most object wins; majority vote per output pixel ---
    owner = torch.zeros(n, big, big, dtype=torch.long)  # 0 = background, j + 1 = object j
    for j in range(m):
        owner = torch.where(masks[:, j], torch.tensor(j + 1), owner)
    frac = F.avg_pool2d(F.one_hot(owner, m + 1).permute(0, 3, 1, 2).float(), ss)  # [n, m+1, H, W]
    win = frac.argmax(1).numpy()
    lut = np.concatenate(
        [np.full((n, 1), spec.background_label), np.where(objects < 0, spec.background_label, objects)], 1
    )
    labels = lut[np.arange(n)[:, None, None], win].astype(np.uint8)

    # --- painting at the supersampled resolution (painter's order), then box-averaged ---
    col = t(colour)  # [n, m, 3]
    img = torch.empty(n, big, big, 3)
    photo = ~outlined
    if photo.any():
        i = torch.from_numpy(np.flatnonzero(photo))
        lum = (col[i] * torch.tensor([0.299, 0.587, 0.114])).sum(-1).mean(1)  # mean object luminance
        lvl = t(bg_level)[i]
        base = torch.where(lum > 0.5, 0.08 + 0.27 * lvl, 0.62 + 0.30 * lvl).view(-1, 1, 1, 1)
        tex = F.interpolate(t(texture)[i], size=(big, big), mode="bilinear", align_corners=False).permute(0, 2, 3, 1)
        img[i] = (base + t(bg_tint)[i].view(-1, 1, 1, 3) + world.texture_amplitude * tex).expand(-1, big, big, 3)
        for j in range(m):
            ld = t(light)[i, j].view(-1, 1, 1, 1)
            shade = 1 + 0.12 * (
                torch.cos(ld) * (x.view(1, 1, big, 1) - c[i, j, 0].view(-1, 1, 1, 1)) / 0.5
                + torch.sin(ld) * (y.view(1, big, 1, 1) - c[i, j, 1].view(-1, 1, 1, 1)) / 0.5
            )
            obj = (col[i, j].view(-1, 1, 1, 3) * shade).clamp(0, 1)
            img[i] = torch.where(masks[i, j, ..., None], obj, img[i])
    for name in ("cartoon", "sketch"):
        sel = names == name
        if not sel.any():
            continue
        i = torch.from_numpy(np.flatnonzero(sel))
        ground = t(pastel)[i] if name == "cartoon" else t(paper)[i, None].expand(-1, 3)
        img[i] = ground.view(-1, 1, 1, 3).expand(-1, big, big, 3).clone()
        for j in range(m):
            fill = col[i, j] if name == "cartoon" else ground
            img[i] = torch.where(masks[i, j, ..., None], fill.view(-1, 1, 1, 3), img[i])
            ink = (0.3 if name == "cartoon" else 0.7) * col[i, j]
            img[i] = torch.where(bands[i, j, ..., None], ink.view(-1, 1, 1, 3), img[i])
    img = F.avg_pool2d(img.permute(0, 3, 1, 2), ss).permute(0, 2, 3, 1)
    img = torch.where(torch.from_numpy(photo).view(-1, 1, 1, 1), (img + 0.015 * t(grain)).clamp(0, 1), img)
    img = torch.where(torch.from_numpy(names == "sketch").view(-1, 1, 1, 1), img + 0.02 * t(grain), img)
    for name in ("inverted", "noisy", "lowcontrast"):
        i = torch.from_numpy(np.flatnonzero(names == name))
        if len(i) == 0:
            continue
        if name == "inverted":
            img[i] = 1 - img[i]
        elif name == "noisy":
            img[i] = img[i] + world.noise_sigma * t(noise)[i]
        else:
            img[i] = t(grey)[i].view(-1, 1, 1, 1) + world.low_contrast * (img[i] - 0.5)
    return (img.clamp(0, 1) * 255).round().to(torch.uint8).numpy(), labels


def default_seen_classes(spec: SceneSpec | None = None) -> tuple[int, ...]:
    """Every other world class (arrow, cross, hourglass, moon, star); the other five are unseen."""
    spec = spec or SceneSpec()
    return tuple(range(0, spec.world.num_classes, 2))


def segmentation_benchmark(
    seed: int,
    n_train: int = 512,
    n_test: int = 128,
    seen: Sequence[int] | None = None,
    id_domain: str = "photo",
    spec: SceneSpec | None = None,
) -> dict[str, WorldScenes]:
    """Train on seen classes of one domain; test all classes in that domain and in every other domain.

    Splits: ``"train"`` (``id_domain``, objects of the ``seen`` classes only), ``"id"`` (``id_domain``, all
    classes) and ``"ood_<d>"`` for every other domain (all classes), each from its own random stream.
    """
    spec = spec or SceneSpec()
    spec.world.domain_index(id_domain)
    seen = default_seen_classes(spec) if seen is None else tuple(seen)
    out = {
        "train": generate_scenes(spec, n_train, [seed, _SCENE_STREAM, 0], [id_domain], seen),
        "id": generate_scenes(spec, n_test, [seed, _SCENE_STREAM, 1], [id_domain]),
    }
    for j, d in enumerate(spec.world.domains):
        if d != id_domain:
            out[f"ood_{d}"] = generate_scenes(spec, n_test, [seed, _SCENE_STREAM, 2 + j], [d])
    return out


class WorldSceneDataset(Dataset):
    """(image [3, H, W] normalised, label LongTensor [H, W]) with labels indexed by a vocabulary.

    Args:
        scenes: World scenes.
        vocabulary: World class indices in vocabulary order (default all classes in order); label ``c`` becomes
            ``vocabulary.index(c)``. Classes outside the vocabulary are an error (``unknown="error"``) or ignored.
        mean, std: Normalisation (the world CLIP's).
    """

    def __init__(
        self,
        scenes: WorldScenes,
        vocabulary: Sequence[int] | None = None,
        unknown: str = "error",
        mean: Sequence[float] = WORLD_MEAN,
        std: Sequence[float] = WORLD_STD,
    ):
        spec = scenes.spec
        nc = spec.world.num_classes
        vocab = list(range(nc)) if vocabulary is None else [int(v) for v in vocabulary]
        if unknown not in ("error", "ignore"):
            raise ValueError(f"unknown must be 'error' or 'ignore', got {unknown!r}")
        lut = np.full(256, spec.ignore_index, dtype=np.int64)
        for i, c in enumerate(vocab):
            lut[c] = i
        if spec.background == "class":
            lut[nc] = len(vocab)
        present = set(np.unique(scenes.labels).tolist()) - {spec.ignore_index, nc if spec.background == "class" else -1}
        missing = sorted(present - set(vocab))
        if missing and unknown == "error":
            names = [spec.world.classes[c] for c in missing]
            raise ValueError(f"scenes contain classes {names} outside the vocabulary (pass unknown='ignore')")
        self.scenes, self.vocabulary, self.mean, self.std = scenes, vocab, tuple(mean), tuple(std)
        self.class_names = [spec.world.classes[c] for c in vocab] + (
            ["background"] if spec.background == "class" else []
        )
        self.ignore_index = spec.ignore_index
        self._lut = torch.from_numpy(lut)

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = images_to_tensor(self.scenes.images[i : i + 1], self.mean, self.std)[0]
        return x, self._lut[torch.from_numpy(self.scenes.labels[i].astype(np.int64))]

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All images [N, 3, H, W] and labels [N, H, W] at once (the fast path for small runs)."""
        x = images_to_tensor(self.scenes.images, self.mean, self.std)
        return x, self._lut[torch.from_numpy(self.scenes.labels.astype(np.int64))]
