"""Convolutional recurrent cells over N-D grids: `ConvLSTM`, `ConvGRU`, `ConvSimpleRNN`.

The dense cells' matmuls become ``SAME``-padded, stride-1 convolutions, so the carry keeps the
input's grid: inputs are ``[*batch, *grid, C]`` per step and carries ``[*batch, *grid, F]``.
`project` convolves every time step's input at once (time folded into the batch) and `recur`
holds only the hidden-state convolution and the gate math, so `jaxrnn.RNN` scans them unchanged:
``RNN(ConvLSTM(...)).apply(params, xs)`` with ``xs`` ``[*batch, T, *grid, C]``.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Sequence

import jax
import jax.numpy as jnp

from jaxrnn import _checks
from jaxrnn._typing import Array, Params, PRNGKey
from jaxrnn.cells.base import Cell, masked
from jaxrnn.cells.gru import Recurrent, gated_candidate
from jaxrnn.cells.lstm import LSTM, LSTMState, lstm_update
from jaxrnn.cells.simple import ACTIVATIONS


def conv_nd(
    x: Array, kernel: Array, *, padding: str | Sequence[tuple[int, int]] = "SAME", dilation: int = 1
) -> Array:
    """Stride-1 convolution of `x` ``[*batch, *grid, C]`` with `kernel` ``[*window, C, O]``.

    Any number of leading batch dims (folded into one for the convolution); the grid rank N is
    ``kernel.ndim - 2``. `padding` is ``"SAME"`` (the default, which keeps the grid), ``"VALID"`` or
    one ``(low, high)`` pair per grid axis; `dilation` spaces the kernel taps. Cross-correlation, as
    in ``lax.conv_general_dilated``, Flax and PyTorch.
    """
    n = kernel.ndim - 2
    lead = x.shape[: x.ndim - n - 1]
    flat = x.reshape(math.prod(lead), *x.shape[len(lead) :])
    spec = (0, n + 1, *range(1, n + 1))
    numbers = jax.lax.ConvDimensionNumbers(lhs_spec=spec, rhs_spec=(n + 1, n, *range(n)), out_spec=spec)
    out = jax.lax.conv_general_dilated(
        flat, kernel, (1,) * n, padding, rhs_dilation=(dilation,) * n, dimension_numbers=numbers
    )
    return out.reshape(*lead, *out.shape[1:])


def conv_same_im2col(x: Array, kernel: Array) -> Array:
    """The ``SAME``, stride-1 convolution of `conv_nd`, as one matmul over shifted copies of `x` (im2col).

    Used for the hidden-state convolution inside the scan: XLA's CPU convolution computes the
    kernel gradient of a convolution inside a ``while`` loop (the backward scan) about 15x slower
    than the same convolution outside one, while slices, a concatenation and a matmul keep their
    speed. Same numbers as `conv_nd`; the window is ``kernel.shape[:-2]``.
    """
    window = kernel.shape[:-2]
    n = len(window)
    lead = x.ndim - n - 1
    grid = x.shape[lead:-1]
    padded = jnp.pad(x, [(0, 0)] * lead + [((k - 1) // 2, k // 2) for k in window] + [(0, 0)])
    shifted = [
        padded[(Ellipsis, *(slice(o, o + g) for o, g in zip(offset, grid)), slice(None))]
        for offset in itertools.product(*(range(k) for k in window))
    ]
    patches = shifted[0] if len(shifted) == 1 else jnp.concatenate(shifted, axis=-1)  # [..., *grid, prod(window) * C]
    return patches @ kernel.reshape(-1, kernel.shape[-1])


def conv_recurrent(kernel: Array) -> Recurrent:
    """`jaxrnn.cells.gru.Recurrent` for a convolution kernel ``[*window, F, G]``."""

    def apply(x: Array, start: int, stop: int | None) -> Array:
        return conv_same_im2col(x, kernel if start == 0 and stop is None else kernel[..., start:stop])

    return apply


@dataclasses.dataclass(frozen=True, kw_only=True)
class _ConvCell(Cell):
    """Shared config and plumbing of the convolutional cells (not a cell by itself)."""

    kernel_size: tuple[int, ...]
    recurrent_kernel_size: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        name = type(self).__name__
        for arg in ("kernel_size", "recurrent_kernel_size"):
            value = getattr(self, arg)
            if value is None:
                continue
            if not isinstance(value, (tuple, list)) or not value:
                raise TypeError(f"{name}: argument '{arg}' must be a non-empty tuple of ints (one per grid axis), got {value!r}")
            for k in value:
                _checks.check_positive_int(name, arg, k)
            object.__setattr__(self, arg, tuple(int(k) for k in value))
        if self.recurrent_kernel_size is None:
            object.__setattr__(self, "recurrent_kernel_size", self.kernel_size)
        if len(self.recurrent_kernel_size) != len(self.kernel_size):
            raise ValueError(
                f"{name}: argument 'recurrent_kernel_size' must have {len(self.kernel_size)} entries (the grid "
                f"rank of 'kernel_size'), got {self.recurrent_kernel_size}"
            )

    @property
    def num_feature_axes(self) -> int:
        return len(self.kernel_size) + 1

    def init_kernels(self, key: PRNGKey, input_size: int, **_: object) -> Params:
        return super().init_kernels(
            key, input_size, window=self.kernel_size, recurrent_window=self.recurrent_kernel_size
        )

    def project(self, params: Params, xs: Array) -> Array:
        us = conv_nd(xs, params["w_ih"])
        if "b" in params:
            us = us + params["b"]
        return us


@dataclasses.dataclass(frozen=True, kw_only=True)
class ConvLSTM(_ConvCell):
    r"""Convolutional LSTM over N-D grids (Shi et al. 2015), gates ``[i | f | g | o]`` as `LSTM`.

    .. math::
        i, f, g, o &= \sigma, \sigma, \tanh, \sigma\,(W_{ih} * x_t + b + W_{hh} * h_{t-1}) \\
        c_t &= f \odot c_{t-1} + i \odot g, \qquad h_t = o \odot \tanh(c_t)

    where ``*`` is a ``SAME``-padded, stride-1 convolution over the grid. Without the paper's
    peephole terms, as Flax linen ``ConvLSTMCell`` and Keras ``ConvLSTM2D``;
    `jaxrnn.interop.from_flax` converts a Flax ``ConvLSTMCell`` exactly (its ``+1`` on the forget
    gate is folded into ``b``).

    Args:
      hidden_size: number of hidden channels F.
      kernel_size: the input convolution's window, one int per grid axis (its length is the grid rank).
      recurrent_kernel_size: the hidden convolution's window (default: `kernel_size`).
      forget_bias: initial value of the forget-gate bias.
      use_bias: whether to learn the bias ``b``.
      dtype: dtype of the parameters.

    Params: ``w_ih`` [*window, C, 4F] (Glorot uniform per gate), ``w_hh`` [*window, F, 4F]
    (orthogonal per gate), ``b`` [4F] (zeros, forget block = ``forget_bias``).
    Carry: ``LSTMState(h, c)``, each [*batch, *grid, F]; the output is ``h``. `initial_carry` takes
    ``batch_shape = (*batch, *grid)``.

    Example::

        cell = jaxrnn.ConvLSTM(16, kernel_size=(3, 3))
        params = cell.init(jax.random.key(0), input_size=1)           # 1 input channel
        ys, carry = jaxrnn.RNN(cell).apply(params, frames)            # frames: [B, T, 32, 32, 1]
        # ys: [B, T, 32, 32, 16]

    References:
      Shi et al., "Convolutional LSTM network: a machine learning approach for precipitation
      nowcasting", NeurIPS 2015.
    """

    forget_bias: float = 1.0

    num_blocks = 4

    def init(self, key: PRNGKey, input_size: int) -> Params:
        params = self.init_kernels(key, input_size)
        if "b" in params:
            F = self.hidden_size
            params["b"] = params["b"].at[F : 2 * F].set(self.forget_bias)
        return params

    def initial_carry(self, params: Params, batch_shape: tuple[int, ...] = ()) -> LSTMState:
        zeros = jnp.zeros((*tuple(batch_shape), self.hidden_size), params["w_hh"].dtype)
        return LSTMState(h=zeros, c=zeros)

    hidden = staticmethod(LSTM.hidden)
    with_hidden = staticmethod(LSTM.with_hidden)

    def recur(
        self, params: Params, carry: LSTMState, u: Array, *, recurrent_mask: Array | None = None
    ) -> tuple[LSTMState, Array]:
        c, h = lstm_update(u + conv_same_im2col(masked(carry.h, recurrent_mask), params["w_hh"]), carry.c)
        return LSTMState(h=h, c=c), h


@dataclasses.dataclass(frozen=True, kw_only=True)
class ConvGRU(_ConvCell):
    r"""Convolutional GRU over N-D grids (Ballas et al. 2016), gates ``[r | z | n]`` as `GRU`.

    .. math::
        r, z &= \sigma(W_{ir,iz} * x_t + b_{r,z} + W_{hr,hz} * h_{t-1}) \\
        n &= \tanh(W_{in} * x_t + b_n + W_{hn} * (r \odot h_{t-1})) \\
        h_t &= (1 - z) \odot n + z \odot h_{t-1}

    with ``SAME``-padded, stride-1 convolutions. This is the reset-before form of Cho et al. and
    Ballas et al.; ``reset_after=True`` gives the PyTorch form ``r * (W_hn * h + b_hn)`` instead.

    Args:
      hidden_size: number of hidden channels F.
      kernel_size: the input convolution's window, one int per grid axis.
      recurrent_kernel_size: the hidden convolution's window (default: `kernel_size`).
      reset_after: apply the reset gate after the hidden convolution.
      use_bias: whether to learn the biases.
      dtype: dtype of the parameters.

    Params: ``w_ih`` [*window, C, 3F], ``w_hh`` [*window, F, 3F], ``b`` [3F], ``b_hn`` [F]
    (``reset_after`` only). Carry: ``h`` [*batch, *grid, F], also the output.

    Example::

        cell = jaxrnn.ConvGRU(8, kernel_size=(5,))                    # 1-D grid, e.g. a sensor line
        params = cell.init(jax.random.key(0), input_size=2)
        ys, h = jaxrnn.RNN(cell).apply(params, xs)                    # xs: [B, T, 40, 2]

    References:
      Ballas, Yao, Pal & Courville, "Delving deeper into convolutional networks for learning video
      representations", ICLR 2016.
    """

    reset_after: bool = False

    num_blocks = 3

    def init(self, key: PRNGKey, input_size: int) -> Params:
        params = self.init_kernels(key, input_size)
        if self.use_bias and self.reset_after:
            params["b_hn"] = jnp.zeros((self.hidden_size,), self.dtype)
        return params

    def recur(
        self, params: Params, carry: Array, u: Array, *, recurrent_mask: Array | None = None
    ) -> tuple[Array, Array]:
        rz, n = gated_candidate(
            u,
            carry,
            conv_recurrent(params["w_hh"]),
            num_gates=2,
            reset_after=self.reset_after,
            b_hn=params.get("b_hn"),
            recurrent_mask=recurrent_mask,
        )
        h = n + rz[..., self.hidden_size :] * (carry - n)
        return h, h


@dataclasses.dataclass(frozen=True, kw_only=True)
class ConvSimpleRNN(_ConvCell):
    r"""Convolutional Elman cell: :math:`h_t = \phi(W_{ih} * x_t + b + W_{hh} * h_{t-1})`.

    The recurrent convolutional layer of Liang & Hu (2015) iterates this cell (with ReLU) on a
    static input; see `jaxrnn.RecurrentConv`.

    Args:
      hidden_size: number of hidden channels F.
      kernel_size: the input convolution's window, one int per grid axis.
      recurrent_kernel_size: the hidden convolution's window (default: `kernel_size`).
      activation: ``"tanh"`` (default) or ``"relu"``.
      use_bias: whether to learn the bias ``b``.
      dtype: dtype of the parameters.

    Params: ``w_ih`` [*window, C, F], ``w_hh`` [*window, F, F], ``b`` [F].
    Carry: ``h`` [*batch, *grid, F], also the output.

    Example::

        cell = jaxrnn.ConvSimpleRNN(8, kernel_size=(3, 3), activation="relu")
        params = cell.init(jax.random.key(0), input_size=3)
        ys, h = jaxrnn.RNN(cell).apply(params, video)                 # video: [B, T, H, W, 3]
    """

    activation: str = "tanh"

    def __post_init__(self) -> None:
        super().__post_init__()
        _checks.check_choice(type(self).__name__, "activation", self.activation, tuple(ACTIVATIONS))

    def init(self, key: PRNGKey, input_size: int) -> Params:
        return self.init_kernels(key, input_size)

    def recur(
        self, params: Params, carry: Array, u: Array, *, recurrent_mask: Array | None = None
    ) -> tuple[Array, Array]:
        h = ACTIVATIONS[self.activation](u + conv_same_im2col(masked(carry, recurrent_mask), params["w_hh"]))
        return h, h
