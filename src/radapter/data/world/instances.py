"""Instance captions for world images: several captions per image that tell images apart (retrieval).

The classification world (`generate`) gives each image one noisy, class-level alt-text caption, which
cannot tell two red stars apart. Retrieval needs captions that describe *this* image. Here every image
gets `captions_per_image` captions (5 by default, as COCO and Flickr30k), each naming the class and,
independently, attributes of the image read off the parameters the renderer drew:

====================  ==============================================  ========================  =========
attribute             words                                           derived from              P(named)
====================  ==============================================  ========================  =========
colour                the 10 colour names                             the scene colour index    1.0
size                  "small" / (medium: not named) / "big"            extent s < 0.65, >= 0.75  0.6
position              3 x 3 cells: "at the top left", "on the right",  centre shift, |t| < 0.1  0.5
                      "in the centre", ...                             is the centre
tilt (not circles)    "upright" / "tilted left" / "turned clockwise"   rotation, |theta| < 5     0.4
                      ...                                              deg is upright
====================  ==============================================  ========================  =========

Why these words (`scripts/probe_world_retrieval.py` records the study). The shipped world CLIP was
pretrained on alt-text naming class, colour and domain only; every other word of its 49k vocabulary kept
its random initial token embedding. Full fine-tuning trains those embeddings; R-Adapter (and LoRA) cannot,
so captions built on unseen words measure vocabulary learning, not robust fine-tuning: with unseen size,
position and tilt words, fine-tuning with frozen token embeddings lost half its in-distribution gain
(+6.5 -> +3.2 R@1) and R-Adapter reached +1 to +3. So colour is always named (known word, known meaning,
sharpened by fine-tuning), size uses the two size words pretraining did contain ("a small {}" / "a big {}"
framings, unrelated to the image there: known tokens, new meaning — the analogue of CLIP knowing COCO's
words but not binding them to the right image), and position and tilt, whose words are new, are named less
often. Attributes describe the scene, not the rendering, so the same caption fits the image in every domain
(an inverted red star is still captioned "red", as in pretraining).

Phrasing varies (framings, synonyms, word order), and every caption fits the world CLIP's 16-token
context (14 BPE tokens plus start and end): a caption over budget is shortened deterministically (plain
framing, then shortest phrasings, then dropping tilt, then position) — see `make_instance_captions`.

Random streams: `retrieval_benchmark` draws from `[seed, 5, split]`, disjoint from the classification
benchmark's streams (0-4 in `generate`), and the captions from a child stream of each split, so changing
the caption design never changes an image.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from open_clip.tokenizer import SimpleTokenizer

from ..retrieval.sets import ImageTextSet
from .render import render
from .spec import WorldSpec

Seed = int | Sequence[int]

_RETRIEVAL_STREAM = 5  # generate.py uses 0-4
_CAPTION_SUBSTREAM = 1

# -- vocabulary --------------------------------------------------------------------------------------------
# Only words the world CLIP saw in pretraining ("a small {}" / "a big {}" framings), so their token embeddings
# are trained; medium sizes are not named. See InstanceCaptionSpec for why known words matter.
SIZE_WORDS: tuple[tuple[str, ...], ...] = (("small",), (), ("big",))
# position cells keyed (horizontal, vertical), each -1 / 0 / 1 = left / centre / right, bottom / centre / top
_H = {-1: "left", 1: "right"}
_V = {-1: "bottom", 1: "top"}


def _position_phrases(h: int, v: int) -> tuple[str, ...]:
    """Phrasings of a position cell, shortest first."""
    if h == 0 and v == 0:
        return ("centred", "in the centre", "in the middle")
    if v == 0:
        return (f"on the {_H[h]}", f"at the {_H[h]}", f"on the {_H[h]} side")
    if h == 0:
        return (f"at the {_V[v]}", f"near the {_V[v]}", f"at the {_V[v]} edge")
    cell = f"{_V[v]} {_H[h]}"
    return (f"at the {cell}", f"in the {cell}", f"in the {cell} corner")


# tilt -1: clockwise (theta < 0, the top leans right); +1: counter-clockwise (the top leans left)
TILT_PHRASES: dict[int, tuple[str, ...]] = {
    -1: ("tilted right", "leaning right", "turned clockwise", "tilted to the right"),
    0: ("upright", "standing straight", "not tilted"),
    1: ("tilted left", "leaning left", "turned anticlockwise", "tilted to the left"),
}
# "{a}" is the article agreeing with the noun phrase that follows ("a" / "an").
FRAMINGS: tuple[str, ...] = (
    "{a} {np}",
    "{a} {np}",
    "the {np}",
    "a photo of {a} {np}",
    "a picture of {a} {np}",
    "an image of {a} {np}",
    "there is {a} {np}",
    "{np}",
)
# Rotationally symmetric silhouettes: a describer sees no tilt.
NO_TILT_CLASSES: tuple[str, ...] = ("circle",)


@dataclass(frozen=True)
class InstanceCaptionSpec:
    """How instance captions are written; the defaults are the design chosen by `scripts/probe_world_retrieval.py`.

    Each caption names the class and, independently, each attribute with its probability.
    """

    p_colour: float = field(default=1.0, metadata={"help": "P(caption names the colour)"})
    p_size: float = field(default=0.6, metadata={"help": "P(caption names the size)"})
    p_position: float = field(default=0.5, metadata={"help": "P(caption names the position)"})
    p_tilt: float = field(default=0.4, metadata={"help": "P(caption names the tilt), never for circles"})
    size_words: tuple[tuple[str, ...], ...] = field(
        default=SIZE_WORDS, metadata={"help": "words for small, medium, large; an empty tuple: never named"}
    )
    size_edges: tuple[float, float] = field(default=(0.65, 0.75), metadata={"help": "small | medium | large"})
    centre_band: float = field(default=0.10, metadata={"help": "|shift| below this is the centre (frame [-1, 1])"})
    upright_deg: float = field(default=5.0, metadata={"help": "|rotation| below this is upright"})
    max_tokens: int = field(default=14, metadata={"help": "BPE tokens per caption (context 16 - start - end)"})

    def __post_init__(self) -> None:
        object.__setattr__(self, "size_words", tuple(tuple(w) for w in self.size_words))  # JSON gives lists
        if len(self.size_words) != 3:
            raise ValueError(
                f"InstanceCaptionSpec.size_words needs 3 entries (small, medium, large), got {self.size_words}"
            )
        for name in ("p_colour", "p_size", "p_position", "p_tilt"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"InstanceCaptionSpec.{name} must be in [0, 1], got {value}")


@dataclass
class WorldInstances:
    """World images with their scene parameters and several instance captions each (aligned on axis 0)."""

    images: np.ndarray  # uint8 [N, H, W, 3]
    labels: np.ndarray  # int64 [N], index into spec.classes
    domains: np.ndarray  # int64 [N], index into spec.domains
    colours: np.ndarray  # int64 [N], index into spec.colours
    scale: np.ndarray  # float64 [N], object extent / frame
    shift: np.ndarray  # float64 [N, 2], centre offset (x right, y up), frame spans [-1, 1]
    rotation_deg: np.ndarray  # float64 [N], counter-clockwise
    captions: list[list[str]]  # N lists of captions_per_image strings
    spec: WorldSpec = field(default_factory=WorldSpec)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def n_images(self) -> int:
        return len(self.labels)

    @property
    def n_texts(self) -> int:
        return sum(len(c) for c in self.captions)

    def subset(self, index: np.ndarray | Sequence[int]) -> WorldInstances:
        index = np.asarray(index)
        picked = np.arange(len(self))[index]
        return WorldInstances(
            images=self.images[index],
            labels=self.labels[index],
            domains=self.domains[index],
            colours=self.colours[index],
            scale=self.scale[index],
            shift=self.shift[index],
            rotation_deg=self.rotation_deg[index],
            captions=[list(self.captions[i]) for i in picked],
            spec=self.spec,
        )

    def to_image_text_set(self, name: str) -> ImageTextSet:
        """The same images and captions as a :class:`radapter.data.retrieval.ImageTextSet` (pixels in memory)."""
        return ImageTextSet.from_arrays(name, self.images, self.captions)


def instance_attributes(
    spec: WorldSpec,
    labels: np.ndarray,
    scale: np.ndarray,
    shift: np.ndarray,
    rotation_deg: np.ndarray,
    caption_spec: InstanceCaptionSpec | None = None,
) -> dict[str, np.ndarray]:
    """Discretises scene parameters into caption attributes.

    Returns:
        int64 arrays [N]: "size" 0/1/2 (small/medium/large), "h" and "v" -1/0/1 (left/centre/right,
        bottom/centre/top), "tilt" -1/0/1 (clockwise/upright/counter-clockwise), and bool "has_tilt"
        (False for rotationally symmetric classes).
    """
    cs = caption_spec or InstanceCaptionSpec()
    size = np.digitize(scale, cs.size_edges).astype(np.int64)

    def side(x: np.ndarray, band: float) -> np.ndarray:
        return np.where(x <= -band, -1, np.where(x >= band, 1, 0)).astype(np.int64)

    no_tilt = np.isin(np.array(spec.classes)[labels], NO_TILT_CLASSES)
    return {
        "size": size,
        "h": side(shift[:, 0], cs.centre_band),
        "v": side(shift[:, 1], cs.centre_band),
        "tilt": side(rotation_deg, cs.upright_deg),
        "has_tilt": ~no_tilt,
    }


@functools.lru_cache(maxsize=1)
def _bpe():
    return SimpleTokenizer()


@functools.lru_cache(maxsize=65536)
def token_count(text: str) -> int:
    """BPE tokens of `text` with open_clip's tokenizer, without the start and end tokens."""
    return len(_bpe().encode(text))


def _article(np_text: str) -> str:
    return "an" if np_text[0] in "aeiou" or np_text.startswith("hour") else "a"


def _compose(framing: str, noun_phrase: str, position: str | None, tilt: str | None, order: int) -> str:
    head = framing.format(a=_article(noun_phrase), np=noun_phrase)
    if order == 0:  # "a red star at the top, tilted left"
        text = head + (f" {position}" if position else "") + (f", {tilt}" if tilt else "")
    else:  # "a red star, tilted left, at the top"
        text = head + (f", {tilt}" if tilt else "") + (f", {position}" if position else "")
    return text


def make_instance_captions(
    spec: WorldSpec,
    labels: np.ndarray,
    colours: np.ndarray,
    attributes: dict[str, np.ndarray],
    captions_per_image: int,
    rng: np.random.Generator,
    caption_spec: InstanceCaptionSpec | None = None,
) -> list[list[str]]:
    """Draws `captions_per_image` captions per image from its attributes.

    Each caption: a framing, then "[size] [colour] class", then optionally position and tilt, in one of two
    orders. Over budget (`max_tokens`), it is shortened in this order until it fits: plain framing, shortest
    position and tilt phrasings, no tilt, no position (class, size and colour always fit).

    Returns:
        N lists of `captions_per_image` strings.
    """
    cs = caption_spec or InstanceCaptionSpec()
    n, k = len(labels), captions_per_image
    if k < 1:
        raise ValueError(f"captions_per_image must be >= 1, got {k}")
    shape = (n, k)
    # every draw up front, in a fixed order, so a caption's randomness does not depend on the others' text
    with_colour = rng.random(shape) < cs.p_colour
    with_size = rng.random(shape) < cs.p_size
    with_position = rng.random(shape) < cs.p_position
    with_tilt = (rng.random(shape) < cs.p_tilt) & attributes["has_tilt"][:, None]
    framing = rng.integers(len(FRAMINGS), size=shape)
    size_word = rng.integers(2, size=shape)
    position_word = rng.integers(3, size=shape)
    tilt_word = rng.integers(len(TILT_PHRASES[0]) + 1, size=shape)
    order = rng.integers(2, size=shape)

    captions: list[list[str]] = []
    for i in range(n):
        positions = _position_phrases(int(attributes["h"][i]), int(attributes["v"][i]))
        tilts = TILT_PHRASES[int(attributes["tilt"][i])]
        sizes = cs.size_words[int(attributes["size"][i])]
        own = []
        for j in range(k):
            words = []
            if with_size[i, j] and sizes:
                words.append(sizes[size_word[i, j] % len(sizes)])
            if with_colour[i, j]:
                words.append(spec.colours[colours[i]])
            words.append(spec.classes[labels[i]])
            noun_phrase = " ".join(words)
            fr = FRAMINGS[framing[i, j]]
            pos = positions[position_word[i, j] % len(positions)] if with_position[i, j] else None
            tilt = tilts[tilt_word[i, j] % len(tilts)] if with_tilt[i, j] else None
            text = _compose(fr, noun_phrase, pos, tilt, int(order[i, j]))
            for step in range(4):
                if token_count(text) <= cs.max_tokens:
                    break
                if step == 0:
                    fr = "{a} {np}"
                elif step == 1:
                    pos = positions[0] if pos else None
                    tilt = tilts[0] if tilt else None
                elif step == 2:
                    tilt = None
                else:
                    pos = None
                text = _compose(fr, noun_phrase, pos, tilt, int(order[i, j]))
            own.append(text)
        captions.append(own)
    return captions


def generate_instances(
    spec: WorldSpec | None = None,
    n: int = 1000,
    seed: Seed = 0,
    domains: Sequence[str] | None = None,
    colour_cue_rho: float = 0.0,
    captions_per_image: int = 5,
    caption_spec: InstanceCaptionSpec | None = None,
) -> WorldInstances:
    """Samples `n` images (classes and domains balanced) with `captions_per_image` instance captions each.

    Images, labels, domains and colours are drawn from `seed` in the same way as `generate.generate` (colour
    cue included); the captions from the child stream `[*seed, 1]`, so they never change an image.
    """
    spec = spec or WorldSpec()
    if not 0.0 <= colour_cue_rho <= 1.0:
        raise ValueError(f"colour_cue_rho must be in [0, 1], got {colour_cue_rho}")
    seed_list = [int(s) for s in np.atleast_1d(seed)]
    domain_ids = np.array([spec.domain_index(d) for d in (domains or spec.domains)], dtype=np.int64)
    rng = np.random.default_rng(seed_list)
    labels = rng.permutation(np.arange(n) % spec.num_classes).astype(np.int64)
    doms = domain_ids[rng.permutation(np.arange(n) % len(domain_ids))]
    cued = rng.random(n) < colour_cue_rho
    cue = np.array([spec.cue_colour(k) for k in range(spec.num_classes)], dtype=np.int64)
    colours = np.where(cued, cue[labels], rng.integers(len(spec.colours), size=n)).astype(np.int64)
    images, params = render(spec, labels, doms, colours, rng, return_params=True)
    attrs = instance_attributes(spec, labels, params["scale"], params["shift"], params["rotation_deg"], caption_spec)
    caption_rng = np.random.default_rng([*seed_list, _CAPTION_SUBSTREAM])
    captions = make_instance_captions(spec, labels, colours, attrs, captions_per_image, caption_rng, caption_spec)
    return WorldInstances(
        images, labels, doms, colours, params["scale"], params["shift"], params["rotation_deg"], captions, spec
    )


def retrieval_benchmark(
    seed: int,
    n_train: int = 4000,
    n_test: int = 300,
    id_domain: str = "photo",
    captions_per_image: int = 5,
    rho: float = 0.0,
    spec: WorldSpec | None = None,
    caption_spec: InstanceCaptionSpec | None = None,
) -> dict[str, WorldInstances]:
    """The retrieval benchmark: fine-tune on one domain's image-caption pairs, retrieve under domain shift.

    Splits:
        "train":   `n_train` images of `id_domain`;
        "id":      `n_test` images of `id_domain` (the COCO test set of the analogy);
        "ood_<d>": `n_test` images of every other domain d (the Flickr30k of the analogy).
    `rho` is the class-colour cue strength of train and id (0: colour independent of class); ood sets
    have none.
    """
    spec = spec or WorldSpec()
    spec.domain_index(id_domain)
    kw = {"captions_per_image": captions_per_image, "caption_spec": caption_spec}
    stream = [seed, _RETRIEVAL_STREAM]
    splits = {
        "train": generate_instances(spec, n_train, [*stream, 0], [id_domain], rho, **kw),
        "id": generate_instances(spec, n_test, [*stream, 1], [id_domain], rho, **kw),
    }
    for j, d in enumerate(spec.domains):
        if d != id_domain:
            splits[f"ood_{d}"] = generate_instances(spec, n_test, [*stream, 2 + j], [d], 0.0, **kw)
    return splits
