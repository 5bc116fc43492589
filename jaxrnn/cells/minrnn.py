"""minGRU and minLSTM (Feng et al. 2024): gates that see only the input, so the recurrence is linear."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxrnn import _checks
from jaxrnn._typing import Array, Params, PRNGKey
from jaxrnn.cells.base import glorot_blocks
from jaxrnn.cells.linear import LinearCell, g, log_g


@dataclasses.dataclass(frozen=True, kw_only=True)
class _MinCell(LinearCell):
    """What minGRU and minLSTM share: one input kernel of `num_blocks` gate blocks, the candidate
    block last, and the positive (log-space) or the plain candidate."""

    log_space: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.log_space, bool):
            raise TypeError(f"{type(self).__name__}: argument 'log_space' must be a bool, got {self.log_space!r}")

    def init(self, key: PRNGKey, input_size: int) -> Params:
        _checks.check_positive_int(f"{type(self).__name__}.init", "input_size", input_size)
        H, G = self.hidden_size, self.num_blocks
        params = {"w_ih": glorot_blocks(key, input_size, H, G, self.dtype)}
        if self.use_bias:
            params["b"] = jnp.zeros((G * H,), self.dtype)
        return params

    def candidate(self, h_tilde: Array) -> Array:
        return g(h_tilde) if self.log_space else h_tilde


@dataclasses.dataclass(frozen=True, kw_only=True)
class MinGRU(_MinCell):
    r"""minGRU (Feng et al. 2024): a GRU whose update gate and candidate see only the input.

    .. math::
        z_t = \sigma(x_t W_z + b_z), \qquad \tilde h_t = g(x_t W_h + b_h), \qquad
        h_t = (1 - z_t) \odot h_{t-1} + z_t \odot \tilde h_t

    with the paper's log-space form by default (``log_space=True``): ``g(x) = x + 0.5`` for
    ``x >= 0`` and ``sigmoid(x)`` below keeps the candidate positive, so with a non-negative initial
    state every ``h_t`` is positive and the parallel path (`jaxrnn.RNN` with ``method="parallel"``)
    scans ``log a_t = -softplus(k_t)``, ``log b_t = -softplus(-k_t) + log g(\tilde h_t)`` as
    log-sum-exps (``k_t = x_t W_z + b_z``), which cannot overflow or lose small terms. (An initial
    state of any sign is still exact: its term ``(prod a) h_0`` is added outside the log scan.)
    ``log_space=False`` is the paper's plain form: ``\tilde h_t = x_t W_h + b_h``, scanned as is.

    Args:
      hidden_size: number of hidden units H.
      log_space: the positive candidate ``g`` and the log-space parallel scan (default) or the plain form.
      use_bias: whether to learn the bias ``b``.
      dtype: dtype of the parameters.

    Params: ``w_ih`` [I, 2H] (Glorot uniform per block, blocks ``[z | h]``), ``b`` [2H] (zeros).
    Carry: the hidden array ``h`` [*batch, H]; the output is ``h``.

    Example::

        layer = jaxrnn.RNN(jaxrnn.MinGRU(64), method="parallel")    # O(log T) depth over time
        params = layer.init(jax.random.key(0), input_size=8)
        ys, h = layer.apply(params, xs)                                # same as method="sequential"

    References:
      Feng, Tung, Ahmed, Bengio & Hajimirsadeghi, "Were RNNs all we needed?", arXiv:2410.01201, 2024.
    """

    num_blocks = 2

    def coefficients(self, params: Params, us: Array) -> tuple[Array, Array]:
        k, h_tilde = jnp.split(us, 2, axis=-1)
        return jax.nn.sigmoid(-k), jax.nn.sigmoid(k) * self.candidate(h_tilde)

    def log_coefficients(self, params: Params, us: Array) -> tuple[Array, Array]:
        k, h_tilde = jnp.split(us, 2, axis=-1)
        return -jax.nn.softplus(k), -jax.nn.softplus(-k) + log_g(h_tilde)


@dataclasses.dataclass(frozen=True, kw_only=True)
class MinLSTM(_MinCell):
    r"""minLSTM (Feng et al. 2024): an LSTM whose gates see only the input, with normalised gates.

    .. math::
        f_t &= \sigma(x_t W_f + b_f), \quad i_t = \sigma(x_t W_i + b_i), \quad
        \tilde h_t = g(x_t W_h + b_h) \\
        f'_t &= \frac{f_t}{f_t + i_t}, \quad i'_t = \frac{i_t}{f_t + i_t}, \qquad
        h_t = f'_t \odot h_{t-1} + i'_t \odot \tilde h_t

    The normalisation (the paper's "length independence scaling") keeps ``h_t`` a convex mix of the
    old state and the candidate. Log space (default) as for `MinGRU`, with
    ``d = softplus(-k_f) - softplus(-k_i)``, ``log f' = -softplus(d)``, ``log i' = -softplus(-d)``.
    ``log_space=False``: the plain candidate ``\tilde h_t = x_t W_h + b_h``.

    Args:
      hidden_size: number of hidden units H.
      log_space: the positive candidate ``g`` and the log-space parallel scan (default) or the plain form.
      use_bias: whether to learn the bias ``b``.
      dtype: dtype of the parameters.

    Params: ``w_ih`` [I, 3H] (Glorot uniform per block, blocks ``[f | i | h]``), ``b`` [3H] (zeros).
    Carry: the hidden array ``h`` [*batch, H]; the output is ``h``.

    Example::

        layer = jaxrnn.RNN(jaxrnn.MinLSTM(64), method="parallel")
        ys, h = layer.apply(layer.init(jax.random.key(0), 8), xs)

    References:
      Feng, Tung, Ahmed, Bengio & Hajimirsadeghi, "Were RNNs all we needed?", arXiv:2410.01201, 2024.
    """

    num_blocks = 3

    def coefficients(self, params: Params, us: Array) -> tuple[Array, Array]:
        k_f, k_i, h_tilde = jnp.split(us, 3, axis=-1)
        f, i = jax.nn.sigmoid(k_f), jax.nn.sigmoid(k_i)
        return f / (f + i), i / (f + i) * self.candidate(h_tilde)

    def log_coefficients(self, params: Params, us: Array) -> tuple[Array, Array]:
        k_f, k_i, h_tilde = jnp.split(us, 3, axis=-1)
        d = jax.nn.softplus(-k_f) - jax.nn.softplus(-k_i)
        return -jax.nn.softplus(d), -jax.nn.softplus(-d) + log_g(h_tilde)
