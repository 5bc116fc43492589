"""Gated recurrent unit cell."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxrnn import _checks
from jaxrnn._typing import Array, Params, PRNGKey
from jaxrnn.cells.base import Cell, glorot_blocks, orthogonal_blocks


@dataclasses.dataclass(frozen=True, kw_only=True)
class GRU(Cell):
    r"""Gated recurrent unit in the PyTorch / Keras ``reset_after`` form, gates ``[r | z | n]``.

    .. math::
        r, z &= \sigma(x_t W_{ir,iz} + b_{r,z} + h_{t-1} W_{hr,hz}) \\
        n &= \tanh(x_t W_{in} + b_{in} + r \odot (h_{t-1} W_{hn} + b_{hn})) \\
        h_t &= (1 - z) \odot n + z \odot h_{t-1}

    The reset gate multiplies the recurrent term *after* its matmul and bias ``b_hn``, as in PyTorch
    ``nn.GRU``, Keras ``GRU(reset_after=True)`` and Flax linen ``GRUCell``, so all three convert exactly.

    Args:
      hidden_size: number of hidden units H.
      use_bias: whether to learn the biases ``b`` and ``b_hn``.
      dtype: dtype of the parameters.

    Params: ``w_ih`` [I, 3H] (Glorot uniform per gate), ``w_hh`` [H, 3H] (orthogonal per gate),
    ``b`` [3H] (input-side bias, with PyTorch's ``b_hr``, ``b_hz`` merged in), ``b_hn`` [H].
    Carry: the hidden array ``h`` [*batch, H]; the output is ``h``.

    Example::

        cell = jaxrnn.GRU(64)
        params = cell.init(jax.random.key(0), input_size=8)
        h = cell.initial_carry(params, (batch,))
        h, y = cell.step(params, h, x_t)

    References:
      Cho et al., "Learning phrase representations using RNN encoder-decoder for statistical
      machine translation", EMNLP 2014.
    """

    num_blocks = 3

    def init(self, key: PRNGKey, input_size: int) -> Params:
        _checks.check_positive_int("GRU.init", "input_size", input_size)
        k_ih, k_hh = jax.random.split(key)
        H = self.hidden_size
        params = {
            "w_ih": glorot_blocks(k_ih, input_size, H, 3, self.dtype),
            "w_hh": orthogonal_blocks(k_hh, H, H, 3, self.dtype),
        }
        if self.use_bias:
            params["b"] = jnp.zeros((3 * H,), self.dtype)
            params["b_hn"] = jnp.zeros((H,), self.dtype)
        return params

    def recur(self, params: Params, carry: Array, u: Array) -> tuple[Array, Array]:
        H = self.hidden_size
        hh = carry @ params["w_hh"]
        rz = jax.nn.sigmoid(u[..., : 2 * H] + hh[..., : 2 * H])
        r, z = rz[..., :H], rz[..., H:]
        hn = hh[..., 2 * H :]
        if "b_hn" in params:
            hn = hn + params["b_hn"]
        n = jnp.tanh(u[..., 2 * H :] + r * hn)
        h = n + z * (carry - n)
        return h, h
