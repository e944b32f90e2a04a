"""Caption statistics stay within issue 5's bounds (noisy alt-text, class word dominant)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from radapter.data.world.generate import generate
from radapter.data.world.spec import COLOURS, DOMAIN_WORDS, ZERO_SHOT_TEMPLATES, WorldSpec


@pytest.fixture(scope="module")
def world():
    return generate(n=6000, seed=21, render_images=False)


def words(caption: str) -> set[str]:
    return set(re.findall(r"[a-z]+", caption.lower()))


def test_class_word_rates(world):
    spec = world.spec
    true_word = np.array([spec.classes[y] in words(c) for c, y in zip(world.captions, world.labels)])
    assert true_word.mean() >= 0.80
    wrong = (world.caption_labels >= 0) & (world.caption_labels != world.labels)
    assert wrong.mean() == pytest.approx(0.05, abs=0.015)
    # caption_labels says which class word a caption carries, and it is really there
    for c, k in zip(world.captions[:500], world.caption_labels[:500]):
        named = [name for name in spec.classes if name in words(c)]
        assert named == ([spec.classes[k]] if k >= 0 else [])


def test_colour_and_domain_word_rates(world):
    spec = world.spec
    colour_word = np.array([spec.colours[k] in words(c) for c, k in zip(world.captions, world.colours)])
    any_colour = np.array([bool(words(c) & set(COLOURS)) for c in world.captions])
    domain_word = np.array(
        [bool(words(c) & set(DOMAIN_WORDS[spec.domains[d]])) for c, d in zip(world.captions, world.domains)]
    )
    assert 0.15 <= colour_word.mean() <= 0.30
    assert any_colour.mean() <= 0.30
    assert 0.15 <= domain_word.mean() <= 0.30
    all_domain_words = set().union(*DOMAIN_WORDS.values())
    assert np.mean([bool(words(c) & all_domain_words) for c in world.captions]) <= 0.30


def test_captions_fit_the_context():
    from open_clip.tokenizer import SimpleTokenizer

    s = generate(n=3000, seed=5, render_images=False)
    tokens = SimpleTokenizer(context_length=77)(s.captions)
    assert int((tokens != 0).sum(1).max()) <= 16  # the world CLIP's context length


def test_templates_name_no_domain():
    # zero-shot prompts must not favour a domain
    domain_words = set().union(*DOMAIN_WORDS.values())
    for t in ZERO_SHOT_TEMPLATES:
        assert not words(t) & domain_words
    assert "{}" in ZERO_SHOT_TEMPLATES[0] and len(WorldSpec().classes) == 10
