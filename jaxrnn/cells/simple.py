"""Elman network cell (SimpleRNN)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxrnn import _checks
from jaxrnn._typing import Array, Params, PRNGKey
from jaxrnn.cells.base import Cell

ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu}


@dataclasses.dataclass(frozen=True, kw_only=True)
class SimpleRNN(Cell):
    r"""Elman recurrent cell: :math:`h_t = \phi(x_t W_{ih} + b + h_{t-1} W_{hh})`.

    Same equations as PyTorch ``nn.RNN`` (its two biases merged into ``b``) and Flax ``SimpleCell``.

    Args:
      hidden_size: number of hidden units H.
      activation: ``"tanh"`` (default) or ``"relu"``.
      use_bias: whether to learn the bias ``b``.
      dtype: dtype of the parameters.

    Params: ``w_ih`` [I, H] (Glorot uniform), ``w_hh`` [H, H] (orthogonal), ``b`` [H] (zeros).
    Carry: the hidden array ``h`` [*batch, H]; the output is ``h``.

    Example::

        cell = jaxrnn.SimpleRNN(64)
        params = cell.init(jax.random.key(0), input_size=8)
        h = cell.initial_carry(params, (32,))
        h, y = cell.step(params, h, x_t)             # x_t: [32, 8]
        # or, over a whole [T, 32, 8] sequence with the input GEMM hoisted:
        h, ys = jax.lax.scan(lambda c, u: cell.recur(params, c, u), h, cell.project(params, xs))

    References:
      Elman, "Finding structure in time", Cognitive Science 14(2), 1990.
    """

    activation: str = "tanh"

    def __post_init__(self) -> None:
        super().__post_init__()
        _checks.check_choice("SimpleRNN", "activation", self.activation, tuple(ACTIVATIONS))

    def init(self, key: PRNGKey, input_size: int) -> Params:
        return self.init_kernels(key, input_size)

    @property
    def recurrence(self) -> str:
        return "sum"

    def update(self, params: Params, carry: Array, z: Array) -> tuple[Array, Array]:
        h = ACTIVATIONS[self.activation](z)
        return h, h
