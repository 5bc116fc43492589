"""Long short-term memory cell."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxrnn import _checks
from jaxrnn._typing import Array, Params, PRNGKey
from jaxrnn.cells.base import Cell, glorot_blocks, orthogonal_blocks


class LSTMState(NamedTuple):
    """The LSTM carry: hidden state ``h`` and cell state ``c``, each [*batch, H]."""

    h: Array
    c: Array


@dataclasses.dataclass(frozen=True, kw_only=True)
class LSTM(Cell):
    r"""Long short-term memory cell with a forget gate, in PyTorch's gate order ``[i | f | g | o]``.

    .. math::
        i, f, g, o &= \sigma, \sigma, \tanh, \sigma\,(x_t W_{ih} + b + h_{t-1} W_{hh}) \\
        c_t &= f \odot c_{t-1} + i \odot g, \qquad h_t = o \odot \tanh(c_t)

    Numerically identical to PyTorch ``nn.LSTM`` (``b = bias_ih + bias_hh``) and Flax ``LSTMCell``.

    Args:
      hidden_size: number of hidden units H.
      forget_bias: initial value of the forget-gate bias (Gers et al. 2000; Jozefowicz et al. 2015
        recommend 1). It only sets the initial parameters: the forward pass adds nothing, so
        converted PyTorch / Flax weights run unchanged.
      use_bias: whether to learn the bias ``b``.
      dtype: dtype of the parameters.

    Params: ``w_ih`` [I, 4H] (Glorot uniform per gate), ``w_hh`` [H, 4H] (orthogonal per gate),
    ``b`` [4H] (zeros, forget block = ``forget_bias``).
    Carry: ``LSTMState(h, c)``; the output is ``h``.

    Example::

        cell = jaxrnn.LSTM(128)
        params = cell.init(jax.random.key(0), input_size=16)
        carry = cell.initial_carry(params, (batch,))
        carry, h = cell.step(params, carry, x_t)     # one step, e.g. streaming

    References:
      Hochreiter & Schmidhuber, "Long short-term memory", Neural Computation 9(8), 1997.
      Gers, Schmidhuber & Cummins, "Learning to forget: continual prediction with LSTM", 2000.
    """

    forget_bias: float = 1.0

    num_blocks = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.forget_bias, bool) or not isinstance(self.forget_bias, (int, float)):
            raise TypeError(f"LSTM: argument 'forget_bias' must be a float, got {self.forget_bias!r}")

    def init(self, key: PRNGKey, input_size: int) -> Params:
        _checks.check_positive_int("LSTM.init", "input_size", input_size)
        k_ih, k_hh = jax.random.split(key)
        H = self.hidden_size
        params = {
            "w_ih": glorot_blocks(k_ih, input_size, H, 4, self.dtype),
            "w_hh": orthogonal_blocks(k_hh, H, H, 4, self.dtype),
        }
        if self.use_bias:
            params["b"] = jnp.zeros((4 * H,), self.dtype).at[H : 2 * H].set(self.forget_bias)
        return params

    def initial_carry(self, params: Params, batch_shape: tuple[int, ...] = ()) -> LSTMState:
        zeros = jnp.zeros((*tuple(batch_shape), self.hidden_size), params["w_hh"].dtype)
        return LSTMState(h=zeros, c=zeros)

    @staticmethod
    def hidden(carry: LSTMState) -> Array:
        return carry.h

    @staticmethod
    def with_hidden(carry: LSTMState, h: Array) -> LSTMState:
        return carry._replace(h=h)

    def recur(self, params: Params, carry: LSTMState, u: Array) -> tuple[LSTMState, Array]:
        z = u + carry.h @ params["w_hh"]
        i, f, g, o = jnp.split(z, 4, axis=-1)
        c = jax.nn.sigmoid(f) * carry.c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return LSTMState(h=h, c=c), h
