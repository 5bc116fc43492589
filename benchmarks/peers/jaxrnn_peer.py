"""jaxrnn itself."""

from __future__ import annotations

import jax

import jaxrnn
from benchmarks.peers.common import inputs, jax_dtype, make_jax_case
from benchmarks.spec import Case, Spec

FAMILY = "jaxrnn"


def layer_for(spec: Spec, **rnn_options) -> object:
    dtype = jax_dtype(spec)
    cell = {"lstm": jaxrnn.LSTM, "gru": jaxrnn.GRU, "rnn": jaxrnn.SimpleRNN}[spec.cell](spec.hidden, dtype=dtype)
    rnn = jaxrnn.RNN(cell, **rnn_options)
    unit = jaxrnn.Bidirectional(rnn) if spec.bidirectional else rnn
    return unit if spec.layers == 1 else jaxrnn.Stacked([unit] * spec.layers)


def build(spec: Spec) -> list[Case]:
    layer = layer_for(spec)
    params = layer.init(jax.random.key(0), spec.input_size)
    return [make_jax_case("jaxrnn", lambda p, x: layer.apply(p, x)[0], params, inputs(spec))]
