"""LanguageModel: loss, streaming with the cells' `step`, generation, temperature / top-k sampling.

References: the layer equations in float64 numpy (`np_layer` from test_models), a brute-force
greedy decoder that re-scores the whole prefix each step, and sampled frequencies against the
softmax written out in numpy.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
from jaxrnn import models
from tests.test_models import _init, _log_softmax, np_layer

V, E = 7, 4

LMS = {
    "lstm": jaxrnn.RNN(jaxrnn.LSTM(6)),
    "stacked_residual": jaxrnn.Stacked([jaxrnn.RNN(jaxrnn.GRU(E)), jaxrnn.RNN(jaxrnn.LSTM(E))], residual=True),
}


def _np_logits(model, params, tokens):
    """Next-token logits of one unpadded sequence, in numpy."""
    xs = np.asarray(params["embed"]["table"], np.float64)[np.asarray(tokens)]
    hs = np_layer(model.layer, params["layer"], xs)
    return hs @ np.asarray(params["head"]["w"], np.float64) + np.asarray(params["head"]["b"], np.float64)


@pytest.mark.parametrize("name", sorted(LMS))
def test_streaming_step_equals_full_sequence(name):
    model = models.LanguageModel(LMS[name], V, embed_size=E)
    params = _init(model, 0)
    tokens = np.random.default_rng(1).integers(0, V, (2, 9))
    full, final = jax.jit(model.apply)(params, tokens)
    np.testing.assert_allclose(np.asarray(full[0]), _np_logits(model, params, tokens[0]), atol=3e-5)

    step = jax.jit(model.step)
    carry = model.initial_carry(params, (2,))
    for t in range(tokens.shape[1]):
        carry, logits = step(params, carry, jnp.asarray(tokens[:, t]))
        np.testing.assert_allclose(np.asarray(logits), np.asarray(full[:, t]), atol=1e-5)
    for a, b in zip(jax.tree.leaves(carry), jax.tree.leaves(final)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)


@pytest.mark.skipif(
    "zoneout" not in {f.name for f in dataclasses.fields(jaxrnn.RNN)}, reason="RNN has no zoneout option"
)
def test_streaming_with_zoneout_matches_apply():
    """Zoneout acts around the cell (inference: carry averaging); streaming must reproduce it."""
    layer = jaxrnn.RNN(jaxrnn.LSTM(5), zoneout=0.3)
    model = models.LanguageModel(layer, V, embed_size=E)
    params = _init(model, 2)
    tokens = np.random.default_rng(3).integers(0, V, (3, 6))
    full, _ = model.apply(params, tokens)
    carry = model.initial_carry(params, (3,))
    for t in range(6):
        carry, logits = model.step(params, carry, jnp.asarray(tokens[:, t]))
        np.testing.assert_allclose(np.asarray(logits), np.asarray(full[:, t]), atol=1e-5)


def test_loss_is_masked_next_token_cross_entropy():
    model = models.LanguageModel(LMS["lstm"], V, embed_size=E)
    params = _init(model, 4)
    tokens = np.random.default_rng(5).integers(0, V, (3, 6))
    lengths = np.array([6, 3, 1])
    nll = []
    for b in range(3):
        lp = _log_softmax(_np_logits(model, params, tokens[b, : lengths[b]]))
        nll += [-lp[t, tokens[b, t + 1]] for t in range(lengths[b] - 1)]
    got = model.loss(params, tokens, lengths=jnp.asarray(lengths))
    np.testing.assert_allclose(float(got), np.mean(nll), rtol=1e-5)


def test_greedy_generation_equals_brute_force_decoding():
    model = models.LanguageModel(LMS["stacked_residual"], V, embed_size=E)
    params = _init(model, 6)
    prompts = np.random.default_rng(7).integers(0, V, (2, 5))
    lengths = np.array([5, 2])
    out = jax.jit(model.generate, static_argnums=3, static_argnames="temperature")(
        params, jax.random.key(0), prompts, 6, temperature=0.0, lengths=jnp.asarray(lengths)
    )
    for b in range(2):
        seq = list(prompts[b, : lengths[b]])
        for k in range(6):
            nxt = int(np.argmax(_np_logits(model, params, seq)[-1]))
            assert int(out[b, k]) == nxt, (b, k)
            seq.append(nxt)


def test_sampled_frequencies_follow_temperature_and_top_k():
    logits = jnp.array([[2.0, 1.0, 0.5, 0.0, -1.0]])
    keys = jax.random.split(jax.random.key(0), 20000)
    draw = jax.jit(jax.vmap(lambda k, temperature, top_k: models.sample_logits(k, logits, temperature=temperature, top_k=top_k), (0, None, None)), static_argnums=(1, 2))
    for temperature, top_k in [(1.0, None), (0.5, 3), (2.0, 2)]:
        ids = np.asarray(draw(keys, temperature, top_k))[:, 0]
        z = np.asarray(logits[0]) / temperature
        if top_k is not None:
            z[np.argsort(z)[:-top_k]] = -np.inf
        p = np.exp(z - z.max())
        p /= p.sum()
        freq = np.bincount(ids, minlength=5) / len(ids)
        np.testing.assert_allclose(freq, p, atol=0.015)
        if top_k is not None:
            assert set(np.unique(ids)) <= set(np.argsort(-z)[:top_k])
    np.testing.assert_array_equal(models.sample_logits(keys[0], logits, temperature=0.0), [0])


def test_generation_streams_on_from_prompt_carry():
    """A sampled continuation is what `step` yields when fed the same tokens after the prompt."""
    model = models.LanguageModel(LMS["lstm"], V, embed_size=E)
    params = _init(model, 8)
    prompt = np.random.default_rng(9).integers(0, V, (1, 4))
    out = model.generate(params, jax.random.key(3), prompt, 5, temperature=0.7, top_k=4)
    logits, _ = model.apply(params, np.concatenate([prompt, np.asarray(out)], 1))
    # every drawn token lies in the top 4 of the logits it was drawn from
    for k in range(5):
        top4 = np.argsort(-np.asarray(logits[0, 3 + k]))[:4]
        assert int(out[0, k]) in top4


def test_language_model_errors():
    with pytest.raises(ValueError, match="must be causal"):
        models.LanguageModel(jaxrnn.Bidirectional(jaxrnn.RNN(jaxrnn.GRU(4))), V)
    with pytest.raises(ValueError, match="must be causal"):
        models.LanguageModel(jaxrnn.RNN(jaxrnn.GRU(4), reverse=True), V)
    model = models.LanguageModel(LMS["lstm"], V, embed_size=E)
    params = _init(model, 0)
    with pytest.raises(ValueError, match=r"'tokens' must hold ids in \[0, 7\)"):
        model.apply(params, np.array([[1, 7]]))
    with pytest.raises(TypeError, match="'tokens' must hold integer token ids"):
        model.apply(params, np.ones((1, 3), np.float32))
    with pytest.raises(ValueError, match="'top_k' must be at most the vocabulary size 7"):
        model.generate(params, jax.random.key(0), np.array([[1]]), 3, top_k=8)
    with pytest.raises(ValueError, match="'temperature' must be a float >= 0"):
        model.generate(params, jax.random.key(0), np.array([[1]]), 3, temperature=-1.0)
    with pytest.raises(ValueError, match="'prompt' must hold at least one token"):
        model.generate(params, jax.random.key(0), np.zeros((1, 0), int), 3)
    with pytest.raises(ValueError, match="'input_size' must be None or vocab_size 7"):
        model.init(jax.random.key(0), 3)
