"""Flax linen `nn.RNN` over LSTMCell / OptimizedLSTMCell / GRUCell / SimpleCell."""

from __future__ import annotations

import jax
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
        make = lambda: nn.RNN(self.cell_cls(self.hidden, dtype=self.dtype, param_dtype=self.dtype))  # noqa: E731
        for _ in range(self.layers):
            x = nn.Bidirectional(make(), make())(x) if self.bidirectional else make()(x)
        return x


def build(spec: Spec) -> list[Case]:
    xs = inputs(spec)
    cases = []
    for name, cls in CELLS[spec.cell].items():
        net = _Net(cls, spec.hidden, spec.layers, spec.bidirectional, jax_dtype(spec))
        variables = net.init(jax.random.key(0), xs)
        cases.append(make_jax_case(name, net.apply, variables, xs))
    return cases
