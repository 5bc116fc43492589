"""Recurrent-convolutional networks: `Conv1D`, a convolutional front end over time, and
`RecurrentConv`, the recurrent convolutional layer of Liang & Hu (2015) for images.

An RCNN for sequences is a composition, not a new scan: ``Stacked([Conv1D(...), RNN(...)])``
(the convolution extracts local features at every step, the RNN integrates them over time).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from jaxrnn import _checks
from jaxrnn._typing import Array, Params, PRNGKey
from jaxrnn.cells.base import glorot_blocks
from jaxrnn.cells.conv import ConvSimpleRNN, conv_nd
from jaxrnn.cells.simple import ACTIVATIONS

PADDINGS = ("causal", "same")


@dataclasses.dataclass(frozen=True)
class Conv1D:
    """A 1-D convolution over time with the layer interface, to put in front of a recurrent layer.

    ``y_t = act(b + sum_j x_{t - (K-1-j) d} W_j)`` for ``padding="causal"`` (each output sees only the
    present and the past, for forecasting and streaming), or centred windows for ``"same"``. Stride
    1, so outputs keep the time axis and a `Stacked` passes the same ``lengths`` on. With
    ``lengths``, inputs past a sequence's length are zeroed before the convolution (padding never
    leaks into valid steps) and outputs past it are zero.

    Args:
      features: output channels.
      kernel_size: window length K in steps.
      padding: ``"causal"`` (default) or ``"same"``.
      dilation: spacing d between the window's taps (WaveNet-style receptive fields).
      activation: ``"relu"`` (default), ``"tanh"`` or None (linear).
      use_bias: whether to learn the bias ``b``.
      dtype: dtype of the parameters.
      time_major: inputs are ``[T, *batch, F]``.

    Params: ``w`` [K, F_in, features] (Glorot uniform), ``b`` [features]. Carry: ``()`` (stateless).

    Example::

        rcnn = jaxrnn.Stacked([jaxrnn.Conv1D(32, kernel_size=5), jaxrnn.RNN(jaxrnn.LSTM(64))])
        params = rcnn.init(jax.random.key(0), input_size=3)
        ys, (_, lstm_carry) = rcnn.apply(params, xs, lengths=lengths)

    References:
      Lai, Xu, Liu & Zhao, "Recurrent convolutional neural networks for text classification", AAAI 2015.
      Donahue et al., "Long-term recurrent convolutional networks for visual recognition and
      description", CVPR 2015.
    """

    features: int
    kernel_size: int
    _: dataclasses.KW_ONLY
    padding: str = "causal"
    dilation: int = 1
    activation: str | None = "relu"
    use_bias: bool = True
    dtype: Any = jnp.float32
    time_major: bool = False

    def __post_init__(self) -> None:
        _checks.check_positive_int("Conv1D", "features", self.features)
        _checks.check_positive_int("Conv1D", "kernel_size", self.kernel_size)
        _checks.check_positive_int("Conv1D", "dilation", self.dilation)
        _checks.check_choice("Conv1D", "padding", self.padding, PADDINGS)
        _checks.check_choice("Conv1D", "activation", self.activation, (None, *ACTIVATIONS))
        _checks.check_dtype_like("Conv1D", "dtype", self.dtype)
        for flag in ("use_bias", "time_major"):
            if not isinstance(getattr(self, flag), bool):
                raise TypeError(f"Conv1D: argument '{flag}' must be a bool, got {getattr(self, flag)!r}")

    @property
    def output_size(self) -> int:
        return self.features

    def init(self, key: PRNGKey, input_size: int) -> Params:
        _checks.check_positive_int("Conv1D.init", "input_size", input_size)
        params = {"w": glorot_blocks(key, input_size, self.features, 1, self.dtype, window=(self.kernel_size,))}
        if self.use_bias:
            params["b"] = jnp.zeros((self.features,), self.dtype)
        return params

    def initial_carry(self, params: Params, batch_shape: tuple[int, ...] = ()) -> tuple[()]:
        del params, batch_shape
        return ()

    def apply(
        self,
        params: Params,
        xs: Array,
        *,
        lengths: Array | None = None,
        carry: Any = None,
        key: PRNGKey | None = None,
        probe: Array | None = None,
    ) -> tuple[Array, tuple[()]]:
        """Same arguments as `RNN.apply`; `carry` must be None or ``()``, `key` is unused and `probe`
        (shaped like the outputs) is added to them, so ``dL/dprobe = dL/dy``."""
        fn = "Conv1D.apply"
        del key
        keys = ["b", "w"] if self.use_bias else ["w"]
        if not isinstance(params, dict) or sorted(params) != keys or jnp.ndim(params["w"]) != 3:
            got = sorted(params) if isinstance(params, dict) else type(params).__name__
            raise ValueError(f"{fn}: argument 'params' must be the dict returned by Conv1D.init (keys {keys}), got {got}")
        if carry is not None and not (isinstance(carry, tuple) and not carry):
            raise ValueError(f"{fn}: argument 'carry' must be None or () (Conv1D is stateless), got {type(carry).__name__}")
        layout = "[T, *batch, F]" if self.time_major else "[*batch, T, F]"
        xs = _checks.check_float_array(fn, "xs", xs, min_ndim=2, layout=layout)
        _checks.check_feature_size(fn, "xs", xs, int(params["w"].shape[1]), layout)
        if self.time_major:
            xs = jnp.moveaxis(xs, 0, -2)
        num_steps, batch_shape = xs.shape[-2], tuple(xs.shape[:-2])
        valid = None
        if lengths is not None:
            lengths = _checks.check_lengths(fn, lengths, batch_shape, num_steps)
            valid = (jnp.arange(num_steps) < lengths[..., None])[..., None]
            xs = jnp.where(valid, xs, 0)
        span = (self.kernel_size - 1) * self.dilation
        pad = (span, 0) if self.padding == "causal" else (span // 2, span - span // 2)
        ys = conv_nd(xs, params["w"], padding=[pad], dilation=self.dilation)
        if "b" in params:
            ys = ys + params["b"]
        if self.activation is not None:
            ys = ACTIVATIONS[self.activation](ys)
        if probe is not None:
            probe_shape = (*xs.shape[:-1], self.features)
            probe = jnp.moveaxis(probe, 0, -2) if self.time_major else probe
            if tuple(probe.shape) != probe_shape:
                raise ValueError(f"{fn}: argument 'probe' must have the outputs' shape, got {tuple(probe.shape)}")
            ys = ys + probe
        if valid is not None:
            ys = jnp.where(valid, ys, 0)
        if self.time_major:
            ys = jnp.moveaxis(ys, -2, 0)
        return ys, ()


def local_response_norm(x: Array, size: int, *, alpha: float = 1e-3, beta: float = 0.75, k: float = 1.0) -> Array:
    """Local response normalisation across the channels (last axis), as ``torch.nn.LocalResponseNorm``:

    ``b_c = a_c / (k + alpha / size * sum_{c' = c - size//2}^{c + (size-1)//2} a_{c'}^2) ** beta``
    (channels outside ``[0, C)`` count as zero). Defaults are Liang & Hu's (2015).
    """
    sq = jnp.square(x)
    padded = jnp.pad(sq, [(0, 0)] * (x.ndim - 1) + [(size // 2, (size - 1) // 2)])
    window = jax.lax.reduce_window(padded, 0.0, jax.lax.add, (1,) * (x.ndim - 1) + (size,), (1,) * x.ndim, "VALID")
    return x / (k + alpha / size * window) ** beta


@dataclasses.dataclass(frozen=True)
class RecurrentConv:
    """Recurrent convolutional layer (RCL; Liang & Hu 2015) for images or any N-D grid.

    A `jaxrnn.ConvSimpleRNN` cell with ReLU, run for ``iterations + 1`` steps on a *static* input
    (the same feed-forward input at every step), from a zero state:

    .. math::
        x(0) = g(\\mathrm{relu}(w_f * u + b)), \\qquad
        x(t) = g(\\mathrm{relu}(w_f * u + b + w_r * x(t-1))), \\quad t = 1 \\ldots T

    where ``g`` is local response normalisation across channels (`local_response_norm`, window
    ``features // 8 + 1``, alpha 0.001, beta 0.75, as in the paper) or the identity with
    ``lrn=False``. The layer returns ``x(T)``: a feed-forward block of depth T + 1 whose weights
    are shared across depth and whose receptive field grows with every iteration. The feed-forward
    convolution ``w_f * u`` is computed once (the cell's `project`), the iterations repeat only
    the cell's `recur`.

    Args:
      features: output channels K.
      kernel_size: window of both convolutions, one int per grid axis (the paper uses 3x3).
      iterations: T (the paper uses 3).
      lrn: apply local response normalisation after every step.
      use_bias: whether to learn the bias.
      dtype: dtype of the parameters.

    Params: those of ``ConvSimpleRNN(features, kernel_size=kernel_size, activation="relu")``.

    Example::

        rcl = jaxrnn.RecurrentConv(32, kernel_size=(3, 3), iterations=3)
        params = rcl.init(jax.random.key(0), input_size=3)
        y = rcl.apply(params, images)                  # images: [B, 32, 32, 3] -> y: [B, 32, 32, 32]

    References:
      Liang & Hu, "Recurrent convolutional neural network for object recognition", CVPR 2015.
    """

    features: int
    kernel_size: tuple[int, ...]
    _: dataclasses.KW_ONLY
    iterations: int = 3
    lrn: bool = True
    use_bias: bool = True
    dtype: Any = jnp.float32

    def __post_init__(self) -> None:
        _checks.check_non_negative_int("RecurrentConv", "iterations", self.iterations)
        if not isinstance(self.lrn, bool):
            raise TypeError(f"RecurrentConv: argument 'lrn' must be a bool, got {self.lrn!r}")
        cell = ConvSimpleRNN(
            self.features, kernel_size=self.kernel_size, activation="relu", use_bias=self.use_bias, dtype=self.dtype
        )
        object.__setattr__(self, "kernel_size", cell.kernel_size)

    @property
    def cell(self) -> ConvSimpleRNN:
        return ConvSimpleRNN(
            self.features, kernel_size=self.kernel_size, activation="relu", use_bias=self.use_bias, dtype=self.dtype
        )

    @property
    def output_size(self) -> int:
        return self.features

    def init(self, key: PRNGKey, input_size: int) -> Params:
        return self.cell.init(key, input_size)

    def apply(self, params: Params, x: Array) -> Array:
        """``x`` ``[*batch, *grid, C]`` -> ``x(T)`` ``[*batch, *grid, features]``."""
        fn = "RecurrentConv.apply"
        cell = self.cell
        input_size = cell.check_params(fn, params)
        nf = cell.num_feature_axes
        layout = "[*batch, *grid, C]"
        x = _checks.check_float_array(fn, "x", x, min_ndim=nf, layout=layout)
        _checks.check_feature_size(fn, "x", x, input_size, layout)
        u = cell.project(params, x)
        state = cell.initial_carry(params, x.shape[:-1])
        for _ in range(self.iterations + 1):
            state, _ = cell.recur(params, state, u)
            if self.lrn:
                state = local_response_norm(state, self.features // 8 + 1)
        return state
