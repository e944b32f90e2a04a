"""Noisy alt-text captions for world images.

A caption names the class with probability `p_class_word` (the wrong class in a `p_wrong_label`
fraction of those, like web alt-text that mislabels), and independently mentions the colour
(`p_colour_word`) and the domain (`p_domain_word`), and carries alt-text filler (`p_filler`). With the
defaults: true class word in 85.5 % of captions, a wrong one in 4.5 %, none in 10 %; colour and
domain words 25 % each. The study behind issue 5 found that colour and domain words are learned
first, so they are kept well below the class word.
"""

from __future__ import annotations

import numpy as np

from .spec import DOMAIN_WORDS, WorldSpec

# Generic framings; the zero-shot templates (spec.ZERO_SHOT_TEMPLATES) are among them.
CAPTION_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}",
    "a picture of a {}",
    "an image of a {}",
    "a {} shape",
    "a drawing of a {}",
    "{}",
    "the {}",
    "a {}",
    "my {}",
    "a small {}",
    "a big {}",
    "this is a {}",
)
# What a caption says instead of the class when it does not name it.
GENERIC_NOUNS: tuple[str, ...] = ("thing", "object", "symbol", "icon", "figure", "item")
DOMAIN_FORMS: tuple[str, ...] = ("{c}, {d}", "{d} {c}", "{c} ({d})", "{c} in {d} style", "{d}: {c}")
FILLERS: tuple[str, ...] = (
    "hd",
    "free download",
    "stock image",
    "wallpaper",
    "png",
    "vector",
    "jpg",
    "new",
    "cute",
    "simple",
    "#art",
    "from my collection",
    "img 0042",
)


def make_captions(
    spec: WorldSpec,
    labels: np.ndarray,
    domains: np.ndarray,
    colours: np.ndarray,
    rng: np.random.Generator,
) -> tuple[list[str], np.ndarray]:
    """Draws one caption per image.

    Returns:
        captions: list of N strings.
        caption_labels: int64 [N], the class the caption names (may be wrong), -1 if it names none.
    """
    n, c = len(labels), spec.num_classes
    named = rng.random(n) < spec.p_class_word
    wrong = named & (rng.random(n) < spec.p_wrong_label)
    other = (labels + rng.integers(1, c, size=n)) % c  # uniform over the other classes
    caption_labels = np.where(named, np.where(wrong, other, labels), -1).astype(np.int64)
    with_colour = rng.random(n) < spec.p_colour_word
    with_domain = rng.random(n) < spec.p_domain_word
    with_filler = rng.random(n) < spec.p_filler
    template = rng.integers(len(CAPTION_TEMPLATES), size=n)
    generic = rng.integers(len(GENERIC_NOUNS), size=n)
    domain_word = rng.integers(3, size=n)
    domain_form = rng.integers(len(DOMAIN_FORMS), size=n)
    filler = rng.integers(len(FILLERS), size=n)
    filler_first = rng.random(n) < 0.3

    captions = []
    for i in range(n):
        noun = spec.classes[caption_labels[i]] if named[i] else GENERIC_NOUNS[generic[i]]
        if with_colour[i]:
            noun = f"{spec.colours[colours[i]]} {noun}"
        text = CAPTION_TEMPLATES[template[i]].format(noun)
        if with_domain[i]:
            words = DOMAIN_WORDS[spec.domains[domains[i]]]
            text = DOMAIN_FORMS[domain_form[i]].format(c=text, d=words[domain_word[i] % len(words)])
        if with_filler[i]:
            text = f"{FILLERS[filler[i]]} {text}" if filler_first[i] else f"{text} {FILLERS[filler[i]]}"
        captions.append(text)
    return captions, caption_labels
