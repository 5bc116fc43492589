"""Flax NNX `nnx.RNN` over LSTMCell / OptimizedLSTMCell / GRUCell / SimpleCell (functional split/merge)."""

from __future__ import annotations

from flax import nnx

from benchmarks.peers.common import inputs, jax_dtype, make_jax_case
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
    cases = []
    for name, cls in CELLS[spec.cell].items():
        model = nnx.RNN(cls(spec.input_size, spec.hidden, dtype=dtype, param_dtype=dtype, rngs=nnx.Rngs(0)))
        # nnx.RNN draws its carry from an Rngs stream, which cannot be mutated inside jit: make it once.
        carry = model.cell.initialize_carry((spec.batch, spec.input_size), nnx.Rngs(0))
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        apply = lambda p, x, g=graphdef, r=rest, c=carry: nnx.merge(g, p, r)(x, initial_carry=c)  # noqa: E731
        cases.append(make_jax_case(name, apply, params, xs))
    return cases
