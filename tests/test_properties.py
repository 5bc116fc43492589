"""Property tests (hypothesis) over batch shapes, sequence lengths, cells and directions.

Each drawn case checks the layer against definitions that do not use its masking code: the final
carry equals a run over the unpadded prefix, outputs past a length are zero, the padding's content
is irrelevant, and the reverse direction equals a forward pass over the sequence reversed in place.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jaxrnn

F, H = 2, 3
CELLS = [jaxrnn.SimpleRNN(H), jaxrnn.LSTM(H), jaxrnn.GRU(H)]
PARAMS = {cell: cell.init(jax.random.key(i), F) for i, cell in enumerate(CELLS)}
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_JITTED: dict = {}


def _apply(layer):
    """One jitted `apply` per layer config, so repeated shapes reuse their compilation."""
    if layer not in _JITTED:
        _JITTED[layer] = jax.jit(layer.apply)
    return _JITTED[layer]


@st.composite
def padded_batches(draw):
    batch_shape = tuple(draw(st.lists(st.integers(1, 3), min_size=0, max_size=2)))
    steps = draw(st.integers(1, 5))
    n = math.prod(batch_shape)
    lengths = np.array(draw(st.lists(st.integers(0, steps), min_size=n, max_size=n)), np.int32).reshape(batch_shape)
    seed = draw(st.integers(0, 2**16))
    xs = np.asarray(jax.random.normal(jax.random.key(seed), (*batch_shape, steps, F)))
    cell = draw(st.sampled_from(CELLS))
    reverse = draw(st.booleans())
    return cell, reverse, xs, lengths


@SETTINGS
@given(padded_batches())
def test_padded_run_agrees_with_each_unpadded_prefix(case):
    cell, reverse, xs, lengths = case
    params = PARAMS[cell]
    layer = jaxrnn.RNN(cell, reverse=reverse)
    ys, final = _apply(layer)(params, xs, lengths=lengths)
    flat_xs = xs.reshape(-1, *xs.shape[-2:])
    flat_ys = np.asarray(ys).reshape(-1, *ys.shape[-2:])
    flat_final = jax.tree.map(lambda c: np.asarray(c).reshape(-1, H), final)
    init = cell.initial_carry(params)
    for b, n in enumerate(lengths.reshape(-1)):
        n = int(n)
        assert np.all(flat_ys[b, n:] == 0.0)
        if n == 0:
            for leaf, z in zip(jax.tree.leaves(flat_final), jax.tree.leaves(init)):
                np.testing.assert_array_equal(leaf[b], z)
            continue
        ref_ys, ref_final = _apply(layer)(params, flat_xs[b, :n])
        np.testing.assert_allclose(flat_ys[b, :n], ref_ys, atol=1e-5)
        for leaf, ref in zip(jax.tree.leaves(flat_final), jax.tree.leaves(ref_final)):
            np.testing.assert_allclose(leaf[b], ref, atol=1e-5)


@SETTINGS
@given(padded_batches(), st.floats(-1e3, 1e3))
def test_padding_content_is_irrelevant(case, fill):
    cell, reverse, xs, lengths = case
    params = PARAMS[cell]
    layer = jaxrnn.RNN(cell, reverse=reverse)
    valid = np.asarray(jaxrnn.sequence_mask(lengths, xs.shape[-2]))[..., None]
    garbage = np.where(valid, xs, np.float32(fill))
    a = _apply(layer)(params, xs, lengths=lengths)
    b = _apply(layer)(params, garbage, lengths=lengths)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(x, y)


@SETTINGS
@given(padded_batches())
def test_bidirectional_backward_half_is_forward_over_reversed_sequences(case):
    cell, _, xs, lengths = case
    params = PARAMS[cell]
    bi = jaxrnn.Bidirectional(jaxrnn.RNN(cell), merge="concat")
    bi_params = {"forward": params, "backward": params}
    ys, (_, c_b) = _apply(bi)(bi_params, xs, lengths=lengths)
    flipped = jaxrnn.reverse_padded(jnp.asarray(xs), lengths)
    ys_f, c_f = _apply(jaxrnn.RNN(cell))(params, flipped, lengths=lengths)
    np.testing.assert_allclose(ys[..., H:], jaxrnn.reverse_padded(ys_f, lengths), atol=1e-5)
    for a, b in zip(jax.tree.leaves(c_b), jax.tree.leaves(c_f)):
        np.testing.assert_allclose(a, b, atol=1e-5)
