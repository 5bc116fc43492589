"""Minimal gated unit: a GRU whose reset and update gates are one gate."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from jaxrnn._typing import Array, Params, PRNGKey
from jaxrnn.cells.base import Cell
from jaxrnn.cells.gru import dense_recurrent, gated_candidate


@dataclasses.dataclass(frozen=True, kw_only=True)
class MGU(Cell):
    r"""Minimal gated unit (Zhou et al. 2016), blocks ``[f | n]``: one gate where the GRU has two.

    The paper's form (default, ``reset_after=False``): the gate resets ``h_{t-1}`` before the
    recurrent matmul and weights the *candidate* in the update,

    .. math::
        f &= \sigma(x_t W_{if} + b_f + h_{t-1} W_{hf}) \\
        n &= \tanh(x_t W_{in} + b_n + (f \odot h_{t-1}) W_{hn}) \\
        h_t &= (1 - f) \odot h_{t-1} + f \odot n

    Flax linen's ``MGUCell`` form (``reset_after=True``): the gate resets *after* the matmul and bias
    ``b_hn``, and weights the *old state* in the update, as the GRU's ``z`` does (so it is a GRU with
    ``r = z = f``, a different cell from the paper's, not a reparameterisation of it):

    .. math::
        n &= \tanh(x_t W_{in} + b_n + f \odot (h_{t-1} W_{hn} + b_{hn})) \\
        h_t &= (1 - f) \odot n + f \odot h_{t-1}

    `jaxrnn.interop.from_flax` converts a Flax ``MGUCell`` to ``MGU(H, reset_after=True)`` exactly.

    Args:
      hidden_size: number of hidden units H.
      reset_after: the Flax form instead of the paper's.
      gate_bias: initial gate bias. The default (None) leans the gate towards keeping the old
        state, as a forget bias of 1 does for the LSTM (Jozefowicz et al. 2015): -1 in the paper's
        form (where ``f`` weights the candidate), +1 in the Flax form (Flax's own default).
      use_bias: whether to learn the biases ``b`` and ``b_hn``.
      dtype: dtype of the parameters.

    Params: ``w_ih`` [I, 2H] (Glorot uniform per block), ``w_hh`` [H, 2H] (orthogonal per block),
    ``b`` [2H], ``b_hn`` [H] (``reset_after`` only).
    Carry: the hidden array ``h`` [*batch, H]; the output is ``h``.

    Example::

        cell = jaxrnn.MGU(64)
        params = cell.init(jax.random.key(0), input_size=8)
        ys, h = jaxrnn.RNN(cell).apply(params, xs)

    References:
      Zhou, Wu, Zhang & Zhou, "Minimal gated unit for recurrent neural networks", International
      Journal of Automation and Computing 13(3), 2016.
    """

    reset_after: bool = False
    gate_bias: float | None = None

    num_blocks = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.reset_after, bool):
            raise TypeError(f"MGU: argument 'reset_after' must be a bool, got {self.reset_after!r}")
        if self.gate_bias is not None and (
            isinstance(self.gate_bias, bool) or not isinstance(self.gate_bias, (int, float))
        ):
            raise TypeError(f"MGU: argument 'gate_bias' must be a float or None, got {self.gate_bias!r}")

    def init(self, key: PRNGKey, input_size: int) -> Params:
        params = self.init_kernels(key, input_size)
        if self.use_bias:
            H = self.hidden_size
            gate_bias = self.gate_bias
            if gate_bias is None:
                gate_bias = 1.0 if self.reset_after else -1.0
            params["b"] = params["b"].at[:H].set(gate_bias)
            if self.reset_after:
                params["b_hn"] = jnp.zeros((H,), self.dtype)
        return params

    def recur(
        self, params: Params, carry: Array, u: Array, *, recurrent_mask: Array | None = None
    ) -> tuple[Array, Array]:
        f, n = gated_candidate(
            u,
            carry,
            dense_recurrent(params["w_hh"]),
            num_gates=1,
            reset_after=self.reset_after,
            b_hn=params.get("b_hn"),
            recurrent_mask=recurrent_mask,
        )
        h = n + f * (carry - n) if self.reset_after else carry + f * (n - carry)
        return h, h
