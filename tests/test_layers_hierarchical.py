"""`Hierarchical` against a hand-composed pair of scans: `lax.scan` inside each chunk, then across chunks."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
from tests.families_util import normal, random_params

I, HL, HU, T, K = 3, 4, 5, 10, 4
LENGTHS = np.array([T, 7, 1, 0])


def _scan(cell, params, carry, xs):
    """A plain `lax.scan` of the cell's step over the leading axis of `xs`."""
    return jax.lax.scan(lambda c, x: cell.step(params, c, x), carry, xs)


def _reference(lower_cell, upper_cell, params, xs, lengths, bidirectional=False):
    """Per sequence: scan each chunk from a zero carry, then scan the upper cell over the summaries."""
    out = []
    for b, length in enumerate(lengths):
        n = math.ceil(length / K)
        summaries, lower_ys = [], []
        for j in range(n):
            chunk = xs[b, j * K : min((j + 1) * K, length)]
            h0 = lower_cell.initial_carry(params["lower"]["forward"] if bidirectional else params["lower"], ())
            if bidirectional:
                h_f, ys_f = _scan(lower_cell, params["lower"]["forward"], h0, chunk)
                h_b, ys_b = _scan(lower_cell, params["lower"]["backward"], h0, chunk[::-1])
                summaries.append(jnp.concatenate([h_f, h_b]))
                lower_ys.append(jnp.concatenate([ys_f, ys_b[::-1]], -1))
            else:
                h, ys = _scan(lower_cell, params["lower"], h0, chunk)
                summaries.append(lower_cell.hidden(h))
                lower_ys.append(ys)
        s0 = upper_cell.initial_carry(params["upper"], ())
        if n:
            s, ys_up = _scan(upper_cell, params["upper"], s0, jnp.stack(summaries))
        else:
            s, ys_up = s0, jnp.zeros((0, upper_cell.output_size))
        out.append((s, ys_up, lower_ys))
    return out


@pytest.fixture(scope="module")
def setup():
    lower, upper = jaxrnn.GRU(HL), jaxrnn.LSTM(HU)
    layer = jaxrnn.Hierarchical(jaxrnn.RNN(lower), jaxrnn.RNN(upper), chunk=K)
    params = random_params(layer, I, seed=0)
    xs = jnp.asarray(normal((len(LENGTHS), T, I), 1))
    return lower, upper, layer, params, xs, _reference(lower, upper, params, xs, LENGTHS)


def test_upper_outputs_and_carry_match_two_scans(setup):
    _, _, layer, params, xs, ref = setup
    ys, carry = jax.jit(layer.apply)(params, xs, lengths=jnp.asarray(LENGTHS))
    assert ys.shape == (len(LENGTHS), math.ceil(T / K), HU)
    for b, (s, ys_up, _) in enumerate(ref):
        n = len(ys_up)
        np.testing.assert_allclose(ys[b, :n], ys_up, atol=2e-6)
        np.testing.assert_array_equal(ys[b, n:], 0.0)
        np.testing.assert_allclose(carry.h[b], s.h, atol=2e-6)
        np.testing.assert_allclose(carry.c[b], s.c, atol=2e-6)


@pytest.mark.parametrize("broadcast", ["previous", "current"])
def test_broadcast_concatenates_the_upper_state_to_every_step(setup, broadcast):
    lower, upper, _, params, xs, ref = setup
    layer = jaxrnn.Hierarchical(jaxrnn.RNN(lower), jaxrnn.RNN(upper), chunk=K, broadcast=broadcast)
    ys, _ = layer.apply(params, xs, lengths=jnp.asarray(LENGTHS))
    assert ys.shape == (len(LENGTHS), T, HL + HU) and layer.output_size == HL + HU
    for b, (_, ys_up, lower_ys) in enumerate(ref):
        for j, chunk_ys in enumerate(lower_ys):
            context = ys_up[j] if broadcast == "current" else (ys_up[j - 1] if j else jnp.zeros(HU))
            t0 = j * K
            np.testing.assert_allclose(ys[b, t0 : t0 + len(chunk_ys), :HL], chunk_ys, atol=2e-6)
            np.testing.assert_allclose(ys[b, t0 : t0 + len(chunk_ys), HL:], jnp.broadcast_to(context, (len(chunk_ys), HU)), atol=2e-6)
        np.testing.assert_array_equal(ys[b, LENGTHS[b] :], 0.0)


def test_gradients_match_the_two_scans(setup):
    lower, upper, layer, params, xs, _ = setup
    xs, lengths = xs[:2], np.array([T, 7])

    def loss(p):
        _, carry = layer.apply(p, xs, lengths=jnp.asarray(lengths))
        return jnp.sum(jnp.sin(carry.h))

    def ref_loss(p):
        return sum(jnp.sum(jnp.sin(s.h)) for s, _, _ in _reference(lower, upper, p, xs, lengths))

    g, g_ref = jax.jit(jax.grad(loss))(params), jax.jit(jax.grad(ref_loss))(params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=2e-5), g, g_ref)
    assert float(jnp.abs(g["lower"]["w_hh"]).max()) > 1e-3


def test_bidirectional_lower_summarises_with_both_final_states():
    lower, upper = jaxrnn.SimpleRNN(HL), jaxrnn.GRU(HU)
    layer = jaxrnn.Hierarchical(jaxrnn.Bidirectional(jaxrnn.RNN(lower)), jaxrnn.RNN(upper), chunk=K)
    params = random_params(layer, I, seed=2)
    assert params["upper"]["w_ih"].shape == (2 * HL, 3 * HU)
    xs = jnp.asarray(normal((2, T, I), 3))
    lengths = np.array([T, 6])
    ys, h = layer.apply(params, xs, lengths=jnp.asarray(lengths))
    for b, (s, ys_up, _) in enumerate(_reference(lower, upper, params, xs, lengths, bidirectional=True)):
        np.testing.assert_allclose(ys[b, : len(ys_up)], ys_up, atol=2e-6)
        np.testing.assert_allclose(h[b], s, atol=2e-6)


def test_hierarchical_composes_in_stacked_and_without_lengths():
    layer = jaxrnn.Hierarchical(jaxrnn.RNN(jaxrnn.GRU(HL)), jaxrnn.RNN(jaxrnn.GRU(HU)), chunk=K, broadcast="previous")
    deep = jaxrnn.Stacked([layer, jaxrnn.RNN(jaxrnn.GRU(2))])
    params = random_params(deep, I, seed=4)
    xs = jnp.asarray(normal((2, T, I), 5))
    ys, (h_upper, h_top) = deep.apply(params, xs)  # T = 10 is not a multiple of 4: the last chunk has 2 steps
    mid, h_mid = layer.apply(params["layer_0"], xs)
    top, _ = jaxrnn.RNN(jaxrnn.GRU(2)).apply(params["layer_1"], mid)
    np.testing.assert_allclose(ys, top, atol=1e-6)
    np.testing.assert_allclose(h_upper, h_mid, atol=1e-6)
    full, _ = layer.apply(params["layer_0"], xs, lengths=jnp.array([T, T]))
    np.testing.assert_allclose(mid, full, atol=1e-6)


def test_bad_hierarchical_config_names_the_argument():
    rnn = jaxrnn.RNN(jaxrnn.GRU(HL))
    with pytest.raises(ValueError, match="'chunk'"):
        jaxrnn.Hierarchical(rnn, rnn, chunk=0)
    with pytest.raises(ValueError, match="'broadcast'"):
        jaxrnn.Hierarchical(rnn, rnn, chunk=2, broadcast="down")
    with pytest.raises(ValueError, match="'lower'.*batch-major"):
        jaxrnn.Hierarchical(jaxrnn.RNN(jaxrnn.GRU(HL), time_major=True), rnn, chunk=2)
    with pytest.raises(TypeError, match="'upper'"):
        jaxrnn.Hierarchical(rnn, jaxrnn.GRU(HL), chunk=2)
    layer = jaxrnn.Hierarchical(rnn, rnn, chunk=2)
    with pytest.raises(ValueError, match="'lengths'"):
        layer.apply(random_params(layer, I), jnp.ones((2, T, I)), lengths=jnp.array([T + 1, 1]))


def test_heads_pool_the_upper_final_state_and_unknown_lowers_fail_clearly():
    layer = jaxrnn.Hierarchical(jaxrnn.RNN(jaxrnn.GRU(HL)), jaxrnn.RNN(jaxrnn.GRU(HU)), chunk=K)
    model = jaxrnn.models.SequenceRegressor(layer, output_size=1, pool="last")
    params = random_params(model, I, seed=6)
    xs = jnp.asarray(normal((2, T, I), 7))
    lengths = jnp.array([T, 5])
    y, _ = model.apply(params, xs, lengths=lengths)
    _, h = layer.apply(params["layer"], xs, lengths=lengths)
    np.testing.assert_allclose(y, h @ params["head"]["w"] + params["head"]["b"], atol=1e-6)
    with pytest.raises(TypeError, match="final hidden state from a Conv1D"):
        jaxrnn.Hierarchical(jaxrnn.Conv1D(4, 3), jaxrnn.RNN(jaxrnn.GRU(HU)), chunk=K).init(jax.random.key(0), I)
