"""Gated recurrent unit cell."""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

from jaxrnn._typing import Array, Params, PRNGKey
from jaxrnn.cells.base import Cell, masked

#: ``recurrent(x, start, stop)``: `x` times the recurrent kernel's output columns ``[start, stop)``
#: (``stop=None``: to the end). A matmul for dense cells, a convolution for convolutional ones.
Recurrent = Callable[[Array, int, "int | None"], Array]


@dataclasses.dataclass(frozen=True, kw_only=True)
class GRU(Cell):
    r"""Gated recurrent unit, gates ``[r | z | n]``, in the PyTorch / Keras ``reset_after`` form by default.

    .. math::
        r, z &= \sigma(x_t W_{ir,iz} + b_{r,z} + h_{t-1} W_{hr,hz}) \\
        n &= \tanh(x_t W_{in} + b_{in} + r \odot (h_{t-1} W_{hn} + b_{hn})) \\
        h_t &= (1 - z) \odot n + z \odot h_{t-1}

    The reset gate multiplies the recurrent term *after* its matmul and bias ``b_hn``, as in PyTorch
    ``nn.GRU``, Keras ``GRU(reset_after=True)`` and Flax linen ``GRUCell``, so all three convert exactly.

    With ``reset_after=False`` it is the original form of Cho et al. (2014) and Keras
    ``GRU(reset_after=False)``: the reset gate multiplies ``h_{t-1}`` *before* the matmul, and there
    is no ``b_hn``:

    .. math::
        n = \tanh(x_t W_{in} + b_{in} + (r \odot h_{t-1}) W_{hn})

    (Keras stores its kernels in ``[z | r | h]`` block order; reorder the blocks to ``[r | z | n]``.)

    Args:
      hidden_size: number of hidden units H.
      reset_after: apply the reset gate after the recurrent matmul (default) or before it.
      use_bias: whether to learn the biases ``b`` and ``b_hn``.
      dtype: dtype of the parameters.

    Params: ``w_ih`` [I, 3H] (Glorot uniform per gate), ``w_hh`` [H, 3H] (orthogonal per gate),
    ``b`` [3H] (input-side bias, with PyTorch's ``b_hr``, ``b_hz`` merged in), ``b_hn`` [H]
    (``reset_after`` only).
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

    reset_after: bool = True

    num_blocks = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.reset_after, bool):
            raise TypeError(f"GRU: argument 'reset_after' must be a bool, got {self.reset_after!r}")

    def init(self, key: PRNGKey, input_size: int) -> Params:
        params = self.init_kernels(key, input_size)
        if self.use_bias and self.reset_after:
            params["b_hn"] = jnp.zeros((self.hidden_size,), self.dtype)
        return params

    @property
    def recurrence(self) -> str | None:
        # reset_after=False resets h before its matmul: not one matmul of h_{t-1}
        return "pair" if self.reset_after else None

    def recur(
        self, params: Params, carry: Array, u: Array, *, recurrent_mask: Array | None = None
    ) -> tuple[Array, Array]:
        if self.reset_after:
            return super().recur(params, carry, u, recurrent_mask=recurrent_mask)
        rz, n = gated_candidate(
            u, carry, dense_recurrent(params["w_hh"]), num_gates=2, reset_after=False, recurrent_mask=recurrent_mask
        )
        h = n + rz[..., self.hidden_size :] * (carry - n)
        return h, h

    def update(self, params: Params, carry: Array, z: tuple[Array, Array]) -> tuple[Array, Array]:
        u, hh = z
        rz, n = reset_after_candidate(u, hh, num_gates=2, b_hn=params.get("b_hn"))
        h = n + rz[..., self.hidden_size :] * (carry - n)
        return h, h


def dense_recurrent(w_hh: Array) -> Recurrent:
    """`Recurrent` for a dense kernel ``[H, G]``: slices columns only when asked for a part of them."""

    def apply(x: Array, start: int, stop: int | None) -> Array:
        return x @ (w_hh if start == 0 and stop is None else w_hh[:, start:stop])

    return apply


def gated_candidate(
    u: Array,
    h: Array,
    recurrent: Recurrent,
    *,
    num_gates: int,
    reset_after: bool,
    b_hn: Array | None = None,
    recurrent_mask: Array | None = None,
) -> tuple[Array, Array]:
    """The math GRU-family cells share (GRU, MGU, ConvGRU): sigmoid gates and the reset candidate.

    `u` ``[..., (num_gates + 1) * H]`` holds the input pre-activations of the gates, then of the
    candidate. The first gate block is the reset gate ``r``; the candidate is
    ``tanh(u_n + r * (recurrent(h) + b_hn))`` if `reset_after`, else ``tanh(u_n + recurrent(r * h))``.
    `recurrent_mask` multiplies ``h`` inside `recurrent` only. Returns ``(gates, n)``; the caller
    mixes ``h`` and ``n`` with its own update gate.
    """
    H = h.shape[-1]
    G = num_gates * H
    h_in = masked(h, recurrent_mask)
    if reset_after:
        return reset_after_candidate(u, recurrent(h_in, 0, None), num_gates=num_gates, b_hn=b_hn)
    gates = jax.nn.sigmoid(u[..., :G] + recurrent(h_in, 0, G))
    n = jnp.tanh(u[..., G:] + recurrent(gates[..., :H] * h_in, G, None))
    return gates, n


def reset_after_candidate(u: Array, hh: Array, *, num_gates: int, b_hn: Array | None) -> tuple[Array, Array]:
    """`gated_candidate` once the recurrent product ``hh = recurrent(h)`` is known (reset after it)."""
    G = u.shape[-1] * num_gates // (num_gates + 1)
    H = G // num_gates
    gates = jax.nn.sigmoid(u[..., :G] + hh[..., :G])
    hn = hh[..., G:] if b_hn is None else hh[..., G:] + b_hn
    return gates, jnp.tanh(u[..., G:] + gates[..., :H] * hn)
