"""Long short-term memory cell."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxrnn import _checks
from jaxrnn._typing import Array, Params, PRNGKey
from jaxrnn.cells.base import Cell, glorot_blocks


class LSTMState(NamedTuple):
    """The LSTM carry: hidden state ``h`` [*batch, H] (or [*batch, P] with ``proj_size=P``) and cell
    state ``c`` [*batch, H]."""

    h: Array
    c: Array


@dataclasses.dataclass(frozen=True, kw_only=True)
class LSTM(Cell):
    r"""Long short-term memory cell with a forget gate, in PyTorch's gate order ``[i | f | g | o]``.

    .. math::
        i, f, g, o &= \sigma, \sigma, \tanh, \sigma\,(x_t W_{ih} + b + h_{t-1} W_{hh}) \\
        c_t &= f \odot c_{t-1} + i \odot g, \qquad h_t = o \odot \tanh(c_t)

    Numerically identical to PyTorch ``nn.LSTM`` (``b = bias_ih + bias_hh``) and Flax ``LSTMCell``.

    Three options change the equations (all off by default; they combine freely):

    * ``peephole=True`` (Gers & Schmidhuber 2000): the gates also see the cell state through
      diagonal weights, ``i`` and ``f`` the old one and ``o`` the new one:
      :math:`i = \sigma(\ldots + w_{ci} \odot c_{t-1})`, :math:`f = \sigma(\ldots + w_{cf} \odot c_{t-1})`,
      :math:`o = \sigma(\ldots + w_{co} \odot c_t)`.
    * ``proj_size=P`` (Sak et al. 2014, LSTMP): :math:`h_t = (o \odot \tanh(c_t)) W_{hr}`, so ``h`` has
      P units and ``W_hh`` is [P, 4H]. Identical to PyTorch ``nn.LSTM(proj_size=P)``
      (``w_hr = weight_hr.T``).
    * ``layer_norm=True`` (Ba et al. 2016, section 6.6 and its LSTM equations): the input and the
      recurrent pre-activations are normalised separately over all 4H gate units, and the cell
      state inside the output tanh (the carried ``c_t`` itself stays un-normalised, as in the paper):

      .. math::
          (i, f, g, o) &= \mathrm{LN}(x_t W_{ih}; \alpha_{ih}) + \mathrm{LN}(h_{t-1} W_{hh}; \alpha_{hh}) + b \\
          h_t &= o \odot \tanh(\mathrm{LN}(c_t; \alpha_c, \beta_c))

      with :math:`\mathrm{LN}(z; \alpha, \beta) = \alpha \odot (z - \mu(z)) / \sqrt{\sigma^2(z) + 10^{-5}} + \beta`
      over the last axis. The paper's two gate shifts :math:`\beta_1, \beta_2` only ever add to
      ``b``, so they are folded into it. The input normalisation depends on ``x_t`` alone, so it
      runs in `project`, outside the scan.

    Args:
      hidden_size: number of hidden (cell) units H.
      forget_bias: initial value of the forget-gate bias (Gers et al. 2000; Jozefowicz et al. 2015
        recommend 1). It only sets the initial parameters: the forward pass adds nothing, so
        converted PyTorch / Flax weights run unchanged.
      peephole: add peephole connections.
      proj_size: if > 0, project ``h`` to this many units.
      layer_norm: layer-normalise the gate pre-activations and the cell state.
      use_bias: whether to learn the bias ``b``.
      dtype: dtype of the parameters.

    Params: ``w_ih`` [I, 4H] (Glorot uniform per gate), ``w_hh`` [H or P, 4H] (orthogonal per gate),
    ``b`` [4H] (zeros, forget block = ``forget_bias``); with peepholes ``w_ci``, ``w_cf``, ``w_co``
    [H] (zeros, so training starts from the plain LSTM); with a projection ``w_hr`` [H, P]
    (Glorot uniform); with layer norm ``ln_ih_scale``, ``ln_hh_scale`` [4H] and ``ln_c_scale`` [H]
    (ones) and ``ln_c_bias`` [H] (zeros).
    Carry: ``LSTMState(h, c)``; the output is ``h``.

    Example::

        cell = jaxrnn.LSTM(128)
        params = cell.init(jax.random.key(0), input_size=16)
        carry = cell.initial_carry(params, (batch,))
        carry, h = cell.step(params, carry, x_t)     # one step, e.g. streaming

        lstmp = jaxrnn.LSTM(128, proj_size=32, peephole=True, layer_norm=True)   # h: [batch, 32]

    References:
      Hochreiter & Schmidhuber, "Long short-term memory", Neural Computation 9(8), 1997.
      Gers, Schmidhuber & Cummins, "Learning to forget: continual prediction with LSTM", 2000.
      Gers & Schmidhuber, "Recurrent nets that time and count", IJCNN 2000 (peepholes).
      Sak, Senior & Beaufays, "Long short-term memory recurrent neural network architectures for
      large scale acoustic modeling", Interspeech 2014 (projection).
      Ba, Kiros & Hinton, "Layer normalization", arXiv:1607.06450, 2016.
    """

    forget_bias: float = 1.0
    peephole: bool = False
    proj_size: int = 0
    layer_norm: bool = False

    num_blocks = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.forget_bias, bool) or not isinstance(self.forget_bias, (int, float)):
            raise TypeError(f"LSTM: argument 'forget_bias' must be a float, got {self.forget_bias!r}")
        for flag in ("peephole", "layer_norm"):
            if not isinstance(getattr(self, flag), bool):
                raise TypeError(f"LSTM: argument '{flag}' must be a bool, got {getattr(self, flag)!r}")
        _checks.check_non_negative_int("LSTM", "proj_size", self.proj_size)

    @property
    def output_size(self) -> int:
        return self.proj_size or self.hidden_size

    def init(self, key: PRNGKey, input_size: int) -> Params:
        params = self.init_kernels(key, input_size, rows=self.output_size)
        H = self.hidden_size
        if self.use_bias:
            params["b"] = params["b"].at[H : 2 * H].set(self.forget_bias)
        if self.peephole:
            params.update({name: jnp.zeros((H,), self.dtype) for name in ("w_ci", "w_cf", "w_co")})
        if self.proj_size:
            # its own stream (fold_in), so the kernels above draw exactly what they draw without a projection
            params["w_hr"] = glorot_blocks(jax.random.fold_in(key, 2), H, self.proj_size, 1, self.dtype)
        if self.layer_norm:
            params["ln_ih_scale"] = jnp.ones((4 * H,), self.dtype)
            params["ln_hh_scale"] = jnp.ones((4 * H,), self.dtype)
            params["ln_c_scale"] = jnp.ones((H,), self.dtype)
            params["ln_c_bias"] = jnp.zeros((H,), self.dtype)
        return params

    def initial_carry(self, params: Params, batch_shape: tuple[int, ...] = ()) -> LSTMState:
        dtype = params["w_hh"].dtype
        c = jnp.zeros((*tuple(batch_shape), self.hidden_size), dtype)
        h = c if not self.proj_size else jnp.zeros((*tuple(batch_shape), self.proj_size), dtype)
        return LSTMState(h=h, c=c)

    @staticmethod
    def hidden(carry: LSTMState) -> Array:
        return carry.h

    @staticmethod
    def with_hidden(carry: LSTMState, h: Array) -> LSTMState:
        return carry._replace(h=h)

    def project(self, params: Params, xs: Array) -> Array:
        if not self.layer_norm:
            return super().project(params, xs)
        us = layer_norm(self.matmul(xs, params["w_ih"]), params["ln_ih_scale"])
        return us + params["b"] if "b" in params else us

    @property
    def projects_densely(self) -> bool:
        return not self.layer_norm

    @property
    def recurrence(self) -> str | None:
        # layer norm normalises hh on its own, so the update does not see u + hh alone
        return None if self.layer_norm else "sum"

    def recur(
        self, params: Params, carry: LSTMState, u: Array, *, recurrent_mask: Array | None = None
    ) -> tuple[LSTMState, Array]:
        if not self.layer_norm:
            return super().recur(params, carry, u, recurrent_mask=recurrent_mask)
        hh = layer_norm(self.recurrent_product(params, carry, recurrent_mask), params["ln_hh_scale"])
        return self._gates(params, carry, u + hh)

    def update(self, params: Params, carry: LSTMState, z: Array) -> tuple[LSTMState, Array]:
        return self._gates(params, carry, z)

    def _gates(self, params: Params, carry: LSTMState, z: Array) -> tuple[LSTMState, Array]:
        peepholes = (params["w_ci"], params["w_cf"], params["w_co"]) if self.peephole else None
        cell_norm = (params["ln_c_scale"], params["ln_c_bias"]) if self.layer_norm else None
        c, h = lstm_update(z, carry.c, peepholes=peepholes, cell_norm=cell_norm)
        if self.proj_size:
            h = self.matmul(h, params["w_hr"])
        return LSTMState(h=h, c=c), h


LAYER_NORM_EPS = 1e-5


def layer_norm(z: Array, scale: Array, bias: Array | None = None) -> Array:
    """Layer normalisation over the last axis (Ba et al. 2016), epsilon `LAYER_NORM_EPS`."""
    mean = jnp.mean(z, axis=-1, keepdims=True)
    centred = z - mean
    var = jnp.mean(centred * centred, axis=-1, keepdims=True)
    out = centred * jax.lax.rsqrt(var + LAYER_NORM_EPS) * scale
    return out if bias is None else out + bias


def lstm_update(
    z: Array,
    c_prev: Array,
    *,
    peepholes: tuple[Array, Array, Array] | None = None,
    cell_norm: tuple[Array, Array] | None = None,
) -> tuple[Array, Array]:
    """The LSTM gate math from the summed pre-activations `z` ``[..., 4H]`` (blocks ``i, f, g, o``).

    Shared by `LSTM` and `jaxrnn.ConvLSTM`. Returns ``(c_t, o * tanh(c_t))``; `peepholes` are the
    diagonal weights ``(w_ci, w_cf, w_co)`` and `cell_norm` the ``(scale, bias)`` of the layer norm
    applied to ``c_t`` inside the tanh.
    """
    i, f, g, o = jnp.split(z, 4, axis=-1)
    if peepholes is not None:
        w_ci, w_cf, w_co = peepholes
        i = i + w_ci * c_prev
        f = f + w_cf * c_prev
    c = jax.nn.sigmoid(f) * c_prev + jax.nn.sigmoid(i) * jnp.tanh(g)
    if peepholes is not None:
        o = o + w_co * c
    c_out = c if cell_norm is None else layer_norm(c, *cell_norm)
    return c, jax.nn.sigmoid(o) * jnp.tanh(c_out)
