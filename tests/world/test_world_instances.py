"""Instance captions of the world and the retrieval benchmark: determinism, truthfulness, token budget."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from radapter.data.world.generate import generate
from radapter.data.world.instances import (
    FRAMINGS,
    SIZE_WORDS,
    TILT_PHRASES,
    InstanceCaptionSpec,
    _position_phrases,
    generate_instances,
    instance_attributes,
    retrieval_benchmark,
    token_count,
)
from radapter.data.world.render import render
from radapter.data.world.spec import CLASSES, COLOURS, DOMAINS, WorldSpec

CELLS = list(itertools.product((-1, 0, 1), repeat=2))


@pytest.fixture(scope="module")
def bench():
    return retrieval_benchmark(seed=3, n_train=60, n_test=40, captions_per_image=5)


def test_render_params_leave_the_images_and_the_generator_unchanged():
    spec = WorldSpec()
    labels, domains, colours = np.arange(20) % 10, np.arange(20) % 6, (np.arange(20) * 3) % 10
    g1, g2 = np.random.default_rng(11), np.random.default_rng(11)
    plain = render(spec, labels, domains, colours, g1)
    images, params = render(spec, labels, domains, colours, g2, return_params=True)
    assert plain.tobytes() == images.tobytes()
    assert g1.random() == g2.random()
    assert params["shift"].shape == (20, 2) and params["scale"].shape == (20,)
    assert np.all((params["scale"] >= 0.55) & (params["scale"] <= 0.85))
    assert np.all(np.abs(params["rotation_deg"]) <= 15.0 + 1e-9)
    assert np.all(np.abs(params["shift"]) <= 0.3 + 1e-9)


def test_splits_counts_and_determinism(bench):
    names = ["train", "id"] + [f"ood_{d}" for d in DOMAINS if d != "photo"]
    assert list(bench) == names
    assert bench["train"].n_images == 60 and bench["id"].n_images == 40 and bench["id"].n_texts == 200
    assert all(len(c) == 5 for c in bench["id"].captions)
    assert set(bench["id"].domains.tolist()) == {0} and set(bench["ood_sketch"].domains.tolist()) == {2}
    again = retrieval_benchmark(seed=3, n_train=60, n_test=40)
    for name in names:
        assert again[name].images.tobytes() == bench[name].images.tobytes()
        assert again[name].captions == bench[name].captions
    other = retrieval_benchmark(seed=4, n_train=60, n_test=40)
    assert other["id"].images.tobytes() != bench["id"].images.tobytes()


def test_streams_are_independent_of_the_classification_benchmark_and_of_the_caption_design():
    # the classification benchmark draws from [seed, 1, split]; retrieval from [seed, 5, split]
    a = generate_instances(n=30, seed=[3, 5, 1], domains=["photo"])
    b = generate(n=30, seed=[3, 1, 1], domains=["photo"])
    assert a.images.tobytes() != b.images.tobytes()
    # captions come from a child stream: another design, fewer captions: the same images
    c = generate_instances(
        n=30, seed=[3, 5, 1], domains=["photo"], captions_per_image=2, caption_spec=InstanceCaptionSpec(p_colour=0.1)
    )
    assert c.images.tobytes() == a.images.tobytes()
    assert all(len(x) == 2 for x in c.captions) and c.captions != [x[:2] for x in a.captions]


def _check_caption(text: str, spec: WorldSpec, label: int, colour: int, attrs: dict, i: int) -> None:
    assert spec.classes[label] in text
    words = text.replace(",", " ").split()
    named = [c for c in COLOURS if c in words]
    assert named in ([], [spec.colours[colour]]), text
    sizes = [k for k, size_words in enumerate(SIZE_WORDS) for w in size_words if w in words]
    assert sizes in ([], [attrs["size"][i]]), text
    tilts = [t for t, phrases in TILT_PHRASES.items() for p in phrases if p in text]
    if spec.classes[label] == "circle":
        assert tilts == [], text
    assert set(tilts) <= {int(attrs["tilt"][i])}, text
    for t in tilts:
        for p in TILT_PHRASES[t]:
            text = text.replace(p, "")
    matched = [(len(p), cell) for cell in CELLS for p in _position_phrases(*cell) if p in text]
    if matched:
        assert max(matched)[1] == (int(attrs["h"][i]), int(attrs["v"][i])), text


def test_captions_describe_the_image(bench):
    for name in ("id", "ood_inverted", "train"):
        s = bench[name]
        attrs = instance_attributes(s.spec, s.labels, s.scale, s.shift, s.rotation_deg)
        for i, caps in enumerate(s.captions):
            for text in caps:
                _check_caption(text, s.spec, int(s.labels[i]), int(s.colours[i]), attrs, i)


def test_attributes_follow_the_thresholds():
    spec = WorldSpec()
    attrs = instance_attributes(
        spec,
        labels=np.array([CLASSES.index("circle"), CLASSES.index("star"), 0]),
        scale=np.array([0.6, 0.7, 0.8]),
        shift=np.array([[-0.2, 0.05], [0.0, 0.15], [0.11, -0.29]]),
        rotation_deg=np.array([10.0, -7.0, 2.0]),
    )
    assert attrs["size"].tolist() == [0, 1, 2]
    assert attrs["h"].tolist() == [-1, 0, 1] and attrs["v"].tolist() == [0, 1, -1]
    assert attrs["tilt"].tolist() == [1, -1, 0]
    assert attrs["has_tilt"].tolist() == [False, True, True]


def test_every_caption_fits_the_world_clip_context():
    # every attribute in every caption: the longest captions the design can produce
    full = InstanceCaptionSpec(p_colour=1.0, p_size=1.0, p_position=1.0, p_tilt=1.0)
    s = generate_instances(n=300, seed=9, domains=["photo"], captions_per_image=8, caption_spec=full)
    lengths = [token_count(t) for caps in s.captions for t in caps]
    assert max(lengths) <= full.max_tokens
    # the budget really binds (some captions were shortened) but usually keeps position
    assert sum("," in t or " at " in t or " in " in t for caps in s.captions for t in caps) > 0.8 * len(lengths)
    # and the open_clip tokenizer of the world CLIP keeps the end token of the longest one
    import open_clip

    tok = open_clip.get_tokenizer("ViT-B-32", context_length=16)
    longest = max((t for caps in s.captions for t in caps), key=token_count)
    ids = tok([longest])[0].tolist()
    assert 49407 in ids and ids.index(49407) == token_count(longest) + 1


def test_worst_case_slot_lengths_are_covered_by_the_shortening():
    # the shortest forms the shortening falls back to always fit: plain framing + longest size, colour,
    # class + shortest position and tilt phrasings, or, failing that, dropped
    worst_np = max(
        (f"{s} {c} {k}" for s in (w for ws in SIZE_WORDS for w in ws) for c in COLOURS for k in CLASSES),
        key=token_count,
    )
    assert token_count(f"an {worst_np}") <= InstanceCaptionSpec().max_tokens
    assert len(FRAMINGS) >= 5 and all("{np}" in f for f in FRAMINGS)


def test_to_image_text_set(bench):
    its = bench["id"].to_image_text_set("world_id")
    assert its.n_images == 40 and its.n_texts == 200 and its.texts[:5] == bench["id"].captions[0]
    assert its.load_image(3).size == (32, 32)
    assert its.text_to_image[5:10].tolist() == [1] * 5


def test_bad_caption_spec():
    with pytest.raises(ValueError, match="p_size must be in"):
        InstanceCaptionSpec(p_size=1.5)
    with pytest.raises(ValueError, match="captions_per_image must be >= 1"):
        generate_instances(n=4, seed=0, captions_per_image=0)
