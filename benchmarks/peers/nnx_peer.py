"""Flax NNX `nnx.RNN` over LSTMCell / OptimizedLSTMCell / GRUCell / SimpleCell (functional split/merge)."""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from benchmarks.peers.common import cast_floats, inputs, jax_dtype, make_jax_case
from benchmarks.spec import Case, Spec, Unsupported

FAMILY = "flax.nnx"
CELLS = {
    "lstm": {"nnx.LSTMCell": nnx.LSTMCell, "nnx.OptimizedLSTMCell": nnx.OptimizedLSTMCell},
    "gru": {"nnx.GRUCell": nnx.GRUCell},
    "rnn": {"nnx.SimpleCell": nnx.SimpleCell},
}


def build(spec: Spec) -> list[Case]:
    if spec.layers > 1 or spec.bidirectional:
        raise Unsupported("benchmarked single-layer only (linen covers the deep bidirectional case)")
    xs = inputs(spec)
    dtype = jax_dtype(spec)
    # NNX's orthogonal recurrent initialiser runs a QR, which has no bfloat16 kernel on CPU: initialise
    # in float32 and cast parameters and carry, as the haiku peer does.
    note = "initialised in float32, then cast" if dtype != jnp.float32 else ""
    cases = []
    for name, cls in CELLS[spec.cell].items():
        cell = cls(spec.input_size, spec.hidden, dtype=dtype, param_dtype=jnp.float32, rngs=nnx.Rngs(0))
        model = nnx.RNN(cell)
        # nnx.RNN draws its carry from an Rngs stream, which cannot be mutated inside jit: make it once.
        carry = cast_floats(model.cell.initialize_carry((spec.batch, spec.input_size), nnx.Rngs(0)), dtype)
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        params = cast_floats(params, dtype)
        apply = lambda p, x, g=graphdef, r=rest, c=carry: nnx.merge(g, p, r)(x, initial_carry=c)  # noqa: E731
        cases.append(make_jax_case(name, apply, params, xs, note=note))
    return cases
