"""Flax linen `nn.RNN` over LSTMCell / OptimizedLSTMCell / GRUCell / SimpleCell."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

from benchmarks.peers.common import inputs, jax_dtype, make_jax_case
from benchmarks.spec import Case, Spec

FAMILY = "flax.linen"
CELLS = {
    "lstm": {"linen.LSTMCell": nn.LSTMCell, "linen.OptimizedLSTMCell": nn.OptimizedLSTMCell},
    "gru": {"linen.GRUCell": nn.GRUCell},
    "rnn": {"linen.SimpleCell": nn.SimpleCell},
}


class _Net(nn.Module):
    cell_cls: type
    hidden: int
    layers: int
    bidirectional: bool
    dtype: object

    @nn.compact
    def __call__(self, x):
        # float32 parameters, compute in `dtype`: Flax's mixed-precision layout. With bf16 / fp16
        # parameters, tracing the cells' orthogonal initializer (a QR) fails on GPU.
        make = lambda: nn.RNN(self.cell_cls(self.hidden, dtype=self.dtype, param_dtype=jnp.float32))  # noqa: E731
        for _ in range(self.layers):
            if self.bidirectional:
                x = nn.Bidirectional(make(), make())(x)
            elif self.cell_cls is nn.SimpleCell:
                # SimpleCell makes its carry in param_dtype but returns it in dtype; start it in dtype.
                x = make()(x, initial_carry=jnp.zeros((x.shape[0], self.hidden), self.dtype))
            else:
                x = make()(x)
        return x


def build(spec: Spec) -> list[Case]:
    xs = inputs(spec)
    cases = []
    for name, cls in CELLS[spec.cell].items():
        net = _Net(cls, spec.hidden, spec.layers, spec.bidirectional, jax_dtype(spec))
        variables = net.init(jax.random.key(0), xs)
        cases.append(make_jax_case(name, net.apply, variables, xs, note="float32 params (and carry, LSTM/GRU), matmuls in " + spec.dtype))
    return cases
