"""The feature-major inference loop (`RNN(feature_major=...)`, `jaxrnn.layers.feature_major`) gives the
batch-major loop's values under every option, PyTorch's where the CPU default picks it, and leaves
gradients alone."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jaxrnn
from jaxrnn.layers import tuning
from tests.torch_reference import make_module, torch_run

F, B, T = 3, 4, 7
CELLS = {
    "elman": jaxrnn.SimpleRNN(5),
    "lstm": jaxrnn.LSTM(5),
    "lstm-peep-proj": jaxrnn.LSTM(5, peephole=True, proj_size=3),
    "gru": jaxrnn.GRU(5),
    "gru-no-bias": jaxrnn.GRU(5, use_bias=False),
}
OPTIONS = {
    "plain": {},
    "reverse-lengths": {"reverse": True, "lengths": True},
    "lengths-carry-probe": {"lengths": True, "carry": True, "probe": True},
    "zoneout-inference": {"zoneout": 0.2},  # no key: the expectation
    "zoneout-key": {"zoneout": 0.2, "key": True},
    "dropouts-key": {"dropout": 0.3, "recurrent_dropout": 0.4, "key": True},
    "unroll3": {"unroll": 3},
}


def _apply(layer, params, xs, opts):
    carry = jax.tree.map(lambda c: c + 0.3, layer.initial_carry(params, (B,))) if opts.get("carry") else None
    probe = 0.1 * jnp.ones((B, T, layer.cell.output_size)) if opts.get("probe") else None
    lengths = jnp.array([7, 4, 0, 6]) if opts.get("lengths") else None
    key = jax.random.key(2) if opts.get("key") else None
    return jax.jit(lambda p, x: layer.apply(p, x, lengths=lengths, carry=carry, probe=probe, key=key))(params, xs)


# every option on the two cells with the most moving parts; lengths and a probe on the rest
CASES = [(name, opt) for name in ("lstm-peep-proj", "gru") for opt in OPTIONS] + [
    (name, "lengths-carry-probe") for name in ("elman", "lstm", "gru-no-bias")
]


@pytest.mark.parametrize("name,option", CASES)
def test_feature_major_equals_batch_major(name, option):
    opts = OPTIONS[option]
    kw = {k: v for k, v in opts.items() if k not in ("lengths", "carry", "probe", "key")}
    feature, batch = (jaxrnn.RNN(CELLS[name], feature_major=fm, **kw) for fm in (True, False))
    params = jax.tree.map(lambda a: a + 0.1, batch.init(jax.random.key(0), F))
    xs = jax.random.normal(jax.random.key(1), (B, T, F))
    got, want = _apply(feature, params, xs, opts), _apply(batch, params, xs, opts)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-6)


def test_feature_major_bfloat16_and_gradients_unchanged():
    cell = jaxrnn.LSTM(16, dtype=jnp.bfloat16)
    feature, batch = (jaxrnn.RNN(cell, feature_major=fm) for fm in (True, False))
    params = batch.init(jax.random.key(0), F)
    xs = jax.random.normal(jax.random.key(1), (8, T, F), jnp.bfloat16)
    ys_f, ys_b = (jax.jit(lambda p, x, layer=layer: layer.apply(p, x)[0])(params, xs) for layer in (feature, batch))
    assert ys_f.dtype == jnp.bfloat16
    np.testing.assert_allclose(ys_f.astype(np.float32), ys_b.astype(np.float32), atol=2e-2)  # bfloat16 round-off

    cell = jaxrnn.GRU(8)
    params = cell.init(jax.random.key(0), F)
    xs32 = xs.astype(jnp.float32)

    def grads(feature_major):
        layer = jaxrnn.RNN(cell, feature_major=feature_major)
        return jax.grad(lambda p, x: jnp.sum(jnp.sin(layer.apply(p, x)[0])), argnums=(0, 1))(params, xs32)

    for a, b in zip(jax.tree.leaves(grads(True)), jax.tree.leaves(grads(False))):
        np.testing.assert_array_equal(a, b)  # the custom VJP's saved forward runs batch-major either way


# (kind, hidden): gates 4*128, 3*176 and 512 wide at 8 rows, inside the CPU default's region
@pytest.mark.parametrize("kind,hidden", [("lstm", 128), ("gru", 176), ("rnn_tanh", 512)])
def test_default_inference_loop_matches_pytorch(kind, hidden):
    """What a user's forward pass runs on CPU at these shapes (feature-major) against nn.LSTM/GRU/RNN,
    padded batch included."""
    batch, steps, features = 8, 6, 5
    gates = {"lstm": 4, "gru": 3}.get(kind, 1) * hidden
    if jax.default_backend() == "cpu":
        assert tuning.default_feature_major(batch, gates)
    module = make_module(kind, input_size=features, hidden_size=hidden, num_layers=1, batch_first=True)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, steps, features)).astype(np.float32)
    lengths = rng.integers(1, steps + 1, size=batch)
    lengths[0] = steps
    with torch.no_grad():
        out, states, _ = torch_run(module, x, lengths, None)
    layer, params = jaxrnn.interop.from_torch(module)
    assert isinstance(layer, jaxrnn.RNN) and layer.feature_major is None  # the backend's default
    ys, final = jax.jit(lambda p, x: layer.apply(p, x, lengths=jnp.asarray(lengths)))(params, jnp.asarray(x))
    np.testing.assert_allclose(ys, out.numpy(), atol=1e-5)
    for got, want in zip(jaxrnn.interop.to_torch_state(layer, final), states):
        np.testing.assert_allclose(got, want.numpy(), atol=1e-5)
    forced = dataclasses.replace(layer, feature_major=False)
    np.testing.assert_allclose(ys, forced.apply(params, jnp.asarray(x), lengths=jnp.asarray(lengths))[0], atol=1e-6)


def test_feature_major_is_checked():
    with pytest.raises(TypeError, match="argument 'feature_major' must be None or a bool, got 1"):
        jaxrnn.RNN(jaxrnn.LSTM(4), feature_major=1)
