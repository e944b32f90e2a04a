"""CoOp's prompt learner on tiny open_clip and Hugging Face CLIP models built by the tests."""

from __future__ import annotations

import json

import pytest
import torch
from coop_tiny_models import BUILDERS
from torch.nn import functional as F

from radapter.backbones import encode_image, encode_text
from radapter.prompting.coop import COOP_CONFIG_NAME, COOP_WEIGHTS_NAME, CoOpPromptLearner

CLASSES = ["cat", "golden_retriever", "sea or lake"]


@pytest.fixture(params=sorted(BUILDERS))
def kind(request):
    return request.param


def reference_features(kind: str, model, ids: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
    """The text tower written out by hand, with the context spliced in after the start token.

    open_clip: token embedding -> + positional -> transformer(causal mask) -> ln_final -> row at argmax(ids) ->
    @ text_projection. transformers: embeddings (inputs_embeds) -> encoder(causal mask) -> final_layer_norm ->
    row at the first EOS id -> text_projection.
    """
    n, length = ids.shape
    m = ctx.shape[0]
    rows = torch.arange(n)
    causal = torch.full((length, length), float("-inf")).triu(1)
    if kind == "open_clip":
        x = model.token_embedding(ids)
        x = torch.cat([x[:, :1], ctx.expand(n, -1, -1), x[:, 1 + m :]], dim=1) + model.positional_embedding
        x = model.ln_final(model.transformer(x, attn_mask=causal))
        pooled = x[rows, ids.argmax(dim=-1)] @ model.text_projection
    else:
        tm = model.text_model
        x = tm.embeddings.token_embedding(ids)
        x = torch.cat([x[:, :1], ctx.expand(n, -1, -1), x[:, 1 + m :]], dim=1)
        h = tm.embeddings(inputs_embeds=x)
        h = tm.encoder(inputs_embeds=h, attention_mask=causal[None, None]).last_hidden_state
        h = tm.final_layer_norm(h)
        eos = model.config.text_config.eos_token_id
        pooled = model.text_projection(h[rows, (ids == eos).int().argmax(dim=-1)])
    return F.normalize(pooled, dim=-1)


def ids_of(tokens) -> torch.Tensor:
    return tokens if isinstance(tokens, torch.Tensor) else tokens["input_ids"]


def test_init_phrase_equals_plain_prompt(kind):
    model, tokenizer = BUILDERS[kind]()
    learner = CoOpPromptLearner(model, tokenizer, init="a photo of a")
    # open_clip's BPE has one token per word; the tiny HF vocabulary is letter-level (a, p-h-o-t-o, o-f, a).
    assert learner.n_ctx == (4 if kind == "open_clip" else 9)
    assert learner.prompt_texts(CLASSES) == [
        "a photo of a cat.",
        "a photo of a golden retriever.",
        "a photo of a sea or lake.",
    ]
    with torch.no_grad():
        learned = learner.class_features(CLASSES)
        plain = encode_text(model, tokenizer(learner.prompt_texts(CLASSES)), normalize=True)
        no_period = encode_text(
            model, tokenizer([f"a photo of a {c.replace('_', ' ')}" for c in CLASSES]), normalize=True
        )
    assert learned.shape == (3, 24)
    assert (learned - plain).abs().max() < 1e-5
    assert (learned - no_period).abs().max() > 1e-3  # the test can tell CoOp's trailing "." apart


def test_matches_hand_written_text_tower(kind):
    model, tokenizer = BUILDERS[kind]()
    learner = CoOpPromptLearner(model, tokenizer, n_ctx=6, seed=3)
    assert learner.prompt_texts(["cat"]) == ["X X X X X X cat."]
    with torch.no_grad():
        learner.ctx.add_(torch.randn(learner.ctx.shape, generator=torch.Generator().manual_seed(5)))
        ids = ids_of(tokenizer(learner.prompt_texts(CLASSES)))
        expected = reference_features(kind, model, ids, learner.ctx)
        got = learner.class_features(CLASSES)
    assert (got - expected).abs().max() < 1e-5


def test_random_init_is_seeded_and_leaves_global_rng(kind):
    model, tokenizer = BUILDERS[kind]()
    state = torch.random.get_rng_state()
    a = CoOpPromptLearner(model, tokenizer, seed=1)
    assert torch.equal(torch.random.get_rng_state(), state)
    b = CoOpPromptLearner(model, tokenizer, seed=1)
    c = CoOpPromptLearner(model, tokenizer, seed=2)
    assert a.ctx.shape == (16, 32) and a.n_ctx == 16  # CoOp's default M = 16
    assert torch.equal(a.ctx, b.ctx) and not torch.equal(a.ctx, c.ctx)
    assert 0.015 < a.ctx.std().item() < 0.025 and abs(a.ctx.mean().item()) < 0.005


def test_gradients_reach_only_the_context(kind):
    model, tokenizer = BUILDERS[kind]()
    learner = CoOpPromptLearner(model, tokenizer, n_ctx=4)
    assert [name for name, _ in learner.named_parameters()] == ["ctx"] and list(learner.state_dict()) == ["ctx"]
    assert not any(p.requires_grad for p in model.parameters())
    learner.class_features(CLASSES)[:, 0].sum().backward()
    assert learner.ctx.grad is not None and learner.ctx.grad.abs().sum() > 0 and torch.isfinite(learner.ctx.grad).all()
    assert all(p.grad is None for p in model.parameters())


def test_sgd_on_cross_entropy_reduces_the_loss_and_scores_novel_classes(kind):
    model, tokenizer = BUILDERS[kind]()
    learner = CoOpPromptLearner(model, tokenizer, n_ctx=4, seed=0)
    g = torch.Generator().manual_seed(0)
    images = torch.randn(12, 3, 32, 32, generator=g)
    labels = torch.arange(12) % 3
    with torch.no_grad():
        image_features = encode_image(model, images, normalize=True)
    optimizer = torch.optim.SGD(learner.parameters(), lr=0.01)
    losses = []
    for _ in range(15):
        logits = 100.0 * image_features @ learner.class_features(CLASSES).T
        loss = F.cross_entropy(logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
    # Novel classes are scored with the learned context and their own names.
    novel = ["bird", "frog"]
    with torch.no_grad():
        got = learner.class_features(novel)
        expected = reference_features(kind, model, ids_of(tokenizer(learner.prompt_texts(novel))), learner.ctx)
        logits = image_features @ got.T
    assert got.shape == (2, 24) and (got - expected).abs().max() < 1e-5 and logits.shape == (12, 2)


def test_save_load_round_trip(kind, tmp_path):
    model, tokenizer = BUILDERS[kind]()
    for init in ("a photo of a", None):
        learner = CoOpPromptLearner(model, tokenizer, init=init, n_ctx=None if init else 5, seed=7)
        with torch.no_grad():
            learner.ctx.mul_(3.0)  # "trained"
        folder = tmp_path / f"coop-{init is None}"
        learner.save(folder)
        assert (folder / COOP_WEIGHTS_NAME).is_file()
        config = json.loads((folder / COOP_CONFIG_NAME).read_text())
        assert config["method"] == "coop" and config["n_ctx"] == learner.n_ctx and config["init"] == init
        loaded = CoOpPromptLearner.load(folder, model, tokenizer)
        assert torch.equal(loaded.ctx, learner.ctx) and loaded.n_ctx == learner.n_ctx
        with torch.no_grad():
            assert torch.equal(loaded.class_features(CLASSES + ["bird"]), learner.class_features(CLASSES + ["bird"]))


def test_load_rejects_foreign_folders(tmp_path):
    model, tokenizer = BUILDERS["open_clip"]()
    CoOpPromptLearner(model, tokenizer, n_ctx=3).save(tmp_path / "ok")
    wide, wide_tokenizer = BUILDERS["open_clip"](width=64)
    with pytest.raises(ValueError, match=r"does not fit this model's text tower \(3 tokens of width 64\)"):
        CoOpPromptLearner.load(tmp_path / "ok", wide, wide_tokenizer)
    config = json.loads((tmp_path / "ok" / COOP_CONFIG_NAME).read_text())
    config["method"] = "r-adapter"
    (tmp_path / "ok" / COOP_CONFIG_NAME).write_text(json.dumps(config))
    with pytest.raises(ValueError, match="method is 'r-adapter', expected 'coop'"):
        CoOpPromptLearner.load(tmp_path / "ok", model, tokenizer)
    with pytest.raises(FileNotFoundError, match=COOP_CONFIG_NAME):
        CoOpPromptLearner.load(tmp_path / "nothing", model, tokenizer)


def test_bad_arguments():
    model, tokenizer = BUILDERS["open_clip"]()
    with pytest.raises(ValueError, match="n_ctx=16 but the init phrase 'a photo of a' has 4 tokens"):
        CoOpPromptLearner(model, tokenizer, n_ctx=16, init="a_photo_of_a")
    with pytest.raises(ValueError, match="n_ctx must be a positive integer"):
        CoOpPromptLearner(model, tokenizer, n_ctx=0)
    with pytest.raises(ValueError, match="context length cannot hold"):
        CoOpPromptLearner(model, tokenizer, n_ctx=40)
    with pytest.raises(TypeError, match="needs a text tower"):
        CoOpPromptLearner(torch.nn.Linear(2, 2), tokenizer)
    with pytest.raises(TypeError, match=r"\[batch, length\] tensor"):
        CoOpPromptLearner(model, lambda texts: [[0, 1]] * len(texts))
