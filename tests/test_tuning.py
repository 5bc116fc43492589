"""`RNN`'s per-backend loop defaults (`jaxrnn.layers.tuning`): the rules, and that leaving a choice to
the backend changes nothing but speed. The speed itself is measured in benchmarks, not here."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
from jaxrnn.layers import tuning

CPU = jax.default_backend() == "cpu"


@pytest.mark.skipif(not CPU, reason="the thresholds below are the CPU rules")
def test_cpu_rules():
    lstm64 = 64 * 4 * 64  # w_hh of LSTM(64)
    assert tuning.default_unroll(1, lstm64) == 4  # (B=1, H=64): a step of a few microseconds
    assert tuning.default_unroll(1, lstm64, differentiated=False) == 1  # inference: the rolled loop is faster
    assert tuning.default_unroll(32, 128 * 4 * 128) == 1
    assert tuning.default_unroll(1, None) == 1  # no dense recurrent kernel (convolutional cells)
    assert tuning.default_fused_backward()  # faster than autodiff at every batch measured, 32 to 1024 rows
    assert not tuning.default_hoist()
    assert not tuning.default_fuse_directions()
    # feature-major inference loop: 8-32 rows, gates >= 512 wide
    assert tuning.default_feature_major(16, 4 * 256) and tuning.default_feature_major(8, 512)
    assert tuning.default_feature_major(32, 3 * 512)
    assert not tuning.default_feature_major(4, 4 * 512) and not tuning.default_feature_major(64, 4 * 256)
    assert not tuning.default_feature_major(32, 3 * 128) and not tuning.default_feature_major(1, 4 * 64)


def test_gpu_rules(monkeypatch):
    """What GPU / TPU get (measured on an H100: benchmarks/RESULTS.md, "Loop defaults" on GPU)."""
    monkeypatch.setattr(tuning, "_on_cpu", lambda: False)
    assert tuning.default_unroll(1, 64 * 4 * 64) == 8 and tuning.default_unroll(256, 2048 * 4 * 2048) == 8
    assert tuning.default_unroll(16, 768 * 4 * 768, differentiated=False) == 4  # inference: 4 beat 8
    assert tuning.default_unroll(16, None) == 1  # no dense recurrent kernel (convolutional cells)
    assert tuning.default_hoist() and tuning.default_fused_backward()
    assert tuning.default_fuse_directions()
    assert not tuning.default_feature_major(16, 4 * 256)  # unmeasured on GPU


def test_scan_unroll_resolves_none_and_keeps_explicit():
    params = jaxrnn.RNN(jaxrnn.LSTM(64)).init(jax.random.key(0), 8)
    assert jaxrnn.RNN(jaxrnn.LSTM(64)).scan_unroll(params, 1) == tuning.default_unroll(1, params["w_hh"].size)
    assert jaxrnn.RNN(jaxrnn.LSTM(64), unroll=2).scan_unroll(params, 1) == 2
    assert jaxrnn.RNN(jaxrnn.LSTM(64), unroll=True).scan_unroll(params, 1) is True


@pytest.mark.parametrize("batch", [1, 130])  # both sides of the CPU unroll and fused-backward thresholds
@pytest.mark.parametrize("cell", [jaxrnn.LSTM(8), jaxrnn.GRU(8), jaxrnn.SimpleRNN(8)], ids=repr)
def test_backend_defaults_match_explicit_choices(cell, batch):
    """Auto (None) and every explicit setting give the same outputs and gradients to round-off."""
    xs = jax.random.normal(jax.random.key(1), (batch, 9, 3))
    auto = jaxrnn.RNN(cell)
    params = auto.init(jax.random.key(0), 3)

    def value_and_grads(layer):
        loss = lambda p, x: jnp.sum(jnp.tanh(layer.apply(p, x)[0]) ** 2)  # noqa: E731
        return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(params, xs)

    reference = value_and_grads(jaxrnn.RNN(cell, unroll=1, fused_backward=False, hoist=False))
    for options in ({}, {"unroll": 4, "fused_backward": True}, {"hoist": True, "fused_backward": True}):
        got = value_and_grads(jaxrnn.RNN(cell, **options))
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(reference)):
            np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)


def test_fused_backward_must_be_none_or_bool():
    with pytest.raises(TypeError, match="'fused_backward' must be None or a bool, got 1"):
        jaxrnn.RNN(jaxrnn.LSTM(3), fused_backward=1)
