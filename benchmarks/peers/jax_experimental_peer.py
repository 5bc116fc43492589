"""`jax.experimental.rnn.lstm`: cuDNN through JAX (GPU only, LSTM only, float32 only)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from benchmarks.peers.common import inputs, make_jax_case
from benchmarks.spec import Case, Spec, Unsupported

FAMILY = "jax.experimental.rnn"


def build(spec: Spec) -> list[Case]:
    if jax.default_backend() != "gpu":
        raise Unsupported("jax.experimental.rnn has no CPU/TPU lowering (cuDNN only)")
    if spec.cell != "lstm" or spec.dtype != "float32":
        raise Unsupported("jax.experimental.rnn supports float32 LSTM only")
    from jax.experimental import rnn

    dirs = 2 if spec.bidirectional else 1
    n = rnn.get_num_params_in_lstm(spec.input_size, spec.hidden, spec.layers, spec.bidirectional)
    weights = jax.random.uniform(jax.random.key(0), (n,), jnp.float32, -0.05, 0.05)
    xs = inputs(spec)
    h0 = jnp.zeros((dirs * spec.layers, spec.batch, spec.hidden), jnp.float32)
    lengths = jnp.full((spec.batch,), spec.steps, jnp.int32)

    def apply(w, x):
        y, _, _ = rnn.lstm(
            x, h0, h0, w, lengths, input_size=spec.input_size, hidden_size=spec.hidden,
            num_layers=spec.layers, dropout=0.0, bidirectional=spec.bidirectional,
        )
        return y

    return [make_jax_case("jax.experimental.rnn.lstm", apply, weights, xs)]
