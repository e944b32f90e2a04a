"""Sampling world images with labels, domains, colours and captions; the standard sets.

Determinism: every function takes a `seed` (an int or a sequence of ints, as accepted by
`numpy.random.default_rng`) and uses only generators created from it; no global RNG state is read
or written. Same seed and spec -> same bytes.

Spurious colour cue. With cue strength rho in [0, 1], each image independently takes its class's cue
colour (`spec.cue_colour(label)`) with probability rho and a uniformly random colour otherwise, so
    P(colour = cue colour) = rho + (1 - rho) / K      (K colours)
and `measured_cue_strength` inverts this: (match rate - 1/K) / (1 - 1/K) estimates rho; it is ~0 when
colour is independent of class.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .captions import make_captions
from .render import render
from .spec import WorldSpec

Seed = int | Sequence[int]

# Independent random streams derived from one user seed.
_PRETRAIN_STREAM = 0
_BENCHMARK_STREAM = 1
_HELDOUT_STREAM = 2
_FIXED_STREAM = 3
_VALIDATION_STREAM = 4
FIXED_EVAL_SIZE = 256


@dataclass
class WorldSamples:
    """A set of world images with everything known about them (arrays aligned on axis 0)."""

    images: np.ndarray | None  # uint8 [N, H, W, 3]; None if generated with render=False
    labels: np.ndarray  # int64 [N], index into spec.classes
    domains: np.ndarray  # int64 [N], index into spec.domains
    colours: np.ndarray  # int64 [N], index into spec.colours
    captions: list[str]  # N noisy alt-text captions
    caption_labels: np.ndarray  # int64 [N], class named by the caption (maybe wrong), -1 if none
    spec: WorldSpec = field(default_factory=WorldSpec)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray | Sequence[int]) -> WorldSamples:
        index = np.asarray(index)
        return WorldSamples(
            images=None if self.images is None else self.images[index],
            labels=self.labels[index],
            domains=self.domains[index],
            colours=self.colours[index],
            captions=[self.captions[i] for i in np.arange(len(self))[index]],
            caption_labels=self.caption_labels[index],
            spec=self.spec,
        )

    def domain_names(self) -> list[str]:
        return [self.spec.domains[d] for d in self.domains]


def generate(
    spec: WorldSpec | None = None,
    n: int = 1000,
    seed: Seed = 0,
    domains: Sequence[str] | None = None,
    colour_cue_rho: float = 0.0,
    render_images: bool = True,
) -> WorldSamples:
    """Samples `n` images with balanced classes and domains.

    Args:
        spec: the world (default `WorldSpec()`).
        n: number of images.
        seed: int or sequence of ints for `numpy.random.default_rng`.
        domains: domain names to draw from (balanced); default all of `spec.domains`.
        colour_cue_rho: strength of the class-correlated colour cue (see the module docstring).
        render_images: False skips rasterising (images=None) for fast statistics; everything else is
            drawn first, so it is identical either way.

    Returns:
        WorldSamples with uint8 images [n, H, W, 3].
    """
    spec = spec or WorldSpec()
    if not 0.0 <= colour_cue_rho <= 1.0:
        raise ValueError(f"colour_cue_rho must be in [0, 1], got {colour_cue_rho}")
    domain_ids = np.array([spec.domain_index(d) for d in (domains or spec.domains)], dtype=np.int64)
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % spec.num_classes).astype(np.int64)
    doms = domain_ids[rng.permutation(np.arange(n) % len(domain_ids))]
    cued = rng.random(n) < colour_cue_rho
    cue = np.array([spec.cue_colour(k) for k in range(spec.num_classes)], dtype=np.int64)
    colours = np.where(cued, cue[labels], rng.integers(len(spec.colours), size=n)).astype(np.int64)
    captions, caption_labels = make_captions(spec, labels, doms, colours, rng)
    images = render(spec, labels, doms, colours, rng) if render_images else None
    return WorldSamples(images, labels, doms, colours, captions, caption_labels, spec)


def measured_cue_strength(samples: WorldSamples) -> float:
    """Estimates rho from the colours: (P(colour = cue colour) - 1/K) / (1 - 1/K)."""
    spec = samples.spec
    cue = np.array([spec.cue_colour(k) for k in range(spec.num_classes)])
    k = len(spec.colours)
    match = float(np.mean(samples.colours == cue[samples.labels]))
    return (match - 1 / k) / (1 - 1 / k)


def pretraining_set(seed: int, n: int, spec: WorldSpec | None = None) -> WorldSamples:
    """Image-caption pairs from all domains with no colour cue: the tiny CLIP's pretraining data."""
    return generate(spec, n, seed=[seed, _PRETRAIN_STREAM])


def heldout_set(seed: int, n: int, spec: WorldSpec | None = None) -> WorldSamples:
    """Like `pretraining_set` but from a disjoint random stream: for evaluating the pretrained model."""
    return generate(spec, n, seed=[seed, _HELDOUT_STREAM])


def validation_set(seed: int, n: int, spec: WorldSpec | None = None) -> WorldSamples:
    """Another disjoint stream, for choosing a pretraining checkpoint (kept apart from `heldout_set`)."""
    return generate(spec, n, seed=[seed, _VALIDATION_STREAM])


def fixed_eval_sample(n: int = FIXED_EVAL_SIZE, spec: WorldSpec | None = None) -> WorldSamples:
    """The fixed all-domain sample whose zero-shot accuracy is recorded with the shipped checkpoint."""
    return generate(spec, n, seed=[0, _FIXED_STREAM])


def downstream_benchmark(
    seed: int,
    n_train: int = 5000,
    n_test: int = 1000,
    rho: float = 0.8,
    id_domain: str = "photo",
    spec: WorldSpec | None = None,
    render_images: bool = True,
) -> dict[str, WorldSamples]:
    """The robust fine-tuning benchmark: train on one domain with a colour cue, test under shift.

    Splits (all class-balanced):
        "train":    `n_train` images of `id_domain`, cue strength `rho`;
        "id":       `n_test` images, same distribution as train (ImageNet val);
        "id_shift": `n_test` images of `id_domain`, cue `rho / 2` (like ImageNet-V2);
        "ood_<d>":  `n_test` images of every other domain d, no cue (like ImageNet-R/-Sketch/...).
    """
    spec = spec or WorldSpec()
    spec.domain_index(id_domain)
    splits = {
        "train": generate(spec, n_train, [seed, _BENCHMARK_STREAM, 0], [id_domain], rho, render_images),
        "id": generate(spec, n_test, [seed, _BENCHMARK_STREAM, 1], [id_domain], rho, render_images),
        "id_shift": generate(spec, n_test, [seed, _BENCHMARK_STREAM, 2], [id_domain], rho / 2, render_images),
    }
    for j, d in enumerate(spec.domains):
        if d != id_domain:
            splits[f"ood_{d}"] = generate(spec, n_test, [seed, _BENCHMARK_STREAM, 3 + j], [d], 0.0, render_images)
    return splits
