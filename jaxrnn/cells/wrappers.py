"""Cell wrappers: `LearnableCarry`, a cell whose initial carry is a trained parameter."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from jaxrnn import _checks
from jaxrnn._typing import Array, Carry, Params, PRNGKey
from jaxrnn.cells.base import Cell


@dataclasses.dataclass(frozen=True)
class LearnableCarry(Cell):
    """Wraps a cell so that its initial carry is learned: one carry vector shared by every sequence.

    The wrapped cell's equations are unchanged; only `initial_carry` differs: it broadcasts the
    parameter ``params["carry"]`` (the cell's carry for a single sequence, zeros at init, so an
    untrained wrapper equals the plain cell) to the batch shape, so gradients of the loss reach it
    through every sequence's first step. Any layer built on cells uses it unchanged: ``RNN``,
    ``Bidirectional`` (each direction learns its own), ``Stacked`` (each layer its own), and with
    ``lengths`` a length-0 sequence returns the learned carry. For convolutional cells the learned
    carry has one value per channel, broadcast over the grid.

    Args:
      cell: the cell whose initial carry to learn.

    Params: ``{"cell": <the cell's params>, "carry": <the cell's carry without batch dims>}``.

    Example::

        cell = jaxrnn.LearnableCarry(jaxrnn.LSTM(64))
        layer = jaxrnn.RNN(cell)
        params = layer.init(jax.random.key(0), input_size=8)
        params["carry"]                  # LSTMState(h=[64], c=[64]), trained with the rest
        ys, carry = layer.apply(params, xs)

    References:
      Mohajerin & Waslander, "State initialization for recurrent neural network modeling of
      time-series data", IJCNN 2017 (learned / estimated initial states).
    """

    hidden_size: int = dataclasses.field(init=False, default=0)
    cell: Cell
    use_bias: bool = dataclasses.field(init=False, default=True)
    dtype: Any = dataclasses.field(init=False, default=jnp.float32)

    def __post_init__(self) -> None:
        if not isinstance(self.cell, Cell):
            raise TypeError(f"LearnableCarry: argument 'cell' must be a jaxrnn cell, got {type(self.cell).__name__}")
        for name in ("hidden_size", "use_bias", "dtype"):
            object.__setattr__(self, name, getattr(self.cell, name))
        super().__post_init__()

    @property
    def num_blocks(self) -> int:  # type: ignore[override]
        return self.cell.num_blocks

    @property
    def output_size(self) -> int:
        return self.cell.output_size

    @property
    def num_feature_axes(self) -> int:
        return self.cell.num_feature_axes

    def init(self, key: PRNGKey, input_size: int) -> Params:
        params = self.cell.init(key, input_size)
        return {"cell": params, "carry": self.cell.initial_carry(params, ())}

    def initial_carry(self, params: Params, batch_shape: tuple[int, ...] = ()) -> Carry:
        batch_shape = tuple(batch_shape)
        return jax.tree.map(lambda c: jnp.broadcast_to(c, (*batch_shape, *c.shape)), params["carry"])

    def project(self, params: Params, xs: Array) -> Array:
        return self.cell.project(params["cell"], xs)

    def recur(
        self, params: Params, carry: Carry, u: Array, *, recurrent_mask: Array | None = None
    ) -> tuple[Carry, Array]:
        if recurrent_mask is None:  # cells outside jaxrnn may not take the keyword
            return self.cell.recur(params["cell"], carry, u)
        return self.cell.recur(params["cell"], carry, u, recurrent_mask=recurrent_mask)

    def hidden(self, carry: Carry) -> Array:  # type: ignore[override]
        return self.cell.hidden(carry)

    def with_hidden(self, carry: Carry, h: Array) -> Carry:  # type: ignore[override]
        return self.cell.with_hidden(carry, h)

    def input_size(self, params: Params) -> int:
        return self.cell.input_size(params["cell"])

    def check_params(self, fn: str, params: Params) -> int:
        if not isinstance(params, dict) or set(params) != {"cell", "carry"}:
            got = sorted(params) if isinstance(params, dict) else type(params).__name__
            raise ValueError(
                f"{fn}: argument 'params' must be the dict returned by LearnableCarry.init "
                f"(keys ['carry', 'cell']), got {got}"
            )
        input_size = self.cell.check_params(fn, params["cell"])
        expected = jax.eval_shape(lambda p: self.cell.initial_carry(p, ()), params["cell"])
        _checks.check_tree_like(fn, "params['carry']", params["carry"], expected)
        return input_size
