"""Linear-recurrence cells: the state follows ``h_t = a_t * h_{t-1} + b_t`` with ``(a_t, b_t)`` from ``x_t`` alone.

Such a recurrence is an affine map per step, and affine maps compose associatively, so all T states
follow from a parallel prefix scan in O(log T) depth (Blelloch 1990; Martin & Cundy 2018):
``RNN(cell, method="parallel")`` evaluates these cells with `jax.lax.associative_scan`
(`jaxrnn.parallel`), and ``method="sequential"`` with the ordinary `lax.scan` of `recur`.

A `LinearCell` implements the `jaxrnn.Cell` protocol (so every layer, wrapper and diagnostic that
scans cells takes it) plus `coefficients`: the ``(a_t, b_t)`` of every step at once, from the
projected inputs of all steps. Cells whose ``b_t`` is positive may also give them in log space
(`log_coefficients`), which the parallel path then scans as log-sum-exps (Feng et al. 2024).
"""

from __future__ import annotations

import abc
import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from jaxrnn._typing import Array, Carry, Params
from jaxrnn.cells.base import Cell


@dataclasses.dataclass(frozen=True)
class LinearCell(Cell):
    """Base of cells whose state is a diagonal linear recurrence driven by the inputs.

    Subclasses implement `init`, `coefficients` and, if the carry holds more
    than the linear state, `state` and `readout`. `recur` is derived: ``readout(a * state + b)``.

    Class attributes:
      log_space: `log_coefficients` is available and the parallel path scans in log space.
      hidden_is_state: ``hidden(carry)`` is the linear state itself (so the diagnostics probe, added to
        the hidden state, enters the recurrence as an extra ``b_t``); False when the hidden output is
        read out of the state (the LRU).
    """

    log_space: ClassVar[bool] = False
    hidden_is_state: ClassVar[bool] = True

    @abc.abstractmethod
    def coefficients(self, params: Params, us: Array) -> tuple[Array, Array]:
        """``(a, b)`` of ``h_t = a_t * h_{t-1} + b_t`` for projected inputs `us` with any leading dims
        (one step or all T at once); both shaped like the state."""

    def log_coefficients(self, params: Params, us: Array) -> tuple[Array, Array]:
        """``(log a, log b)`` (elementwise, ``b > 0``), computed stably; only for `log_space` cells."""
        raise NotImplementedError(f"{type(self).__name__} has no log-space coefficients")

    def state(self, carry: Carry) -> Array:
        """The linear state inside `carry` (the carry itself unless overridden)."""
        return carry

    def readout(self, params: Params, state: Array, us: Array) -> tuple[Carry, Array]:
        """``(carry, y)`` after a step from its new linear `state` and projected input `us` (any leading
        dims, so the parallel path reads out all steps at once). Default: the state is both."""
        return state, state

    def recur(
        self, params: Params, carry: Carry, u: Array, *, recurrent_mask: Array | None = None
    ) -> tuple[Carry, Array]:
        if recurrent_mask is not None:
            raise ValueError(
                f"{type(self).__name__}: recurrent dropout does not apply: h_(t-1) enters no recurrent "
                "kernel, only the elementwise carry path (use RNN(recurrent_dropout=0.0))"
            )
        a, b = self.coefficients(params, u)
        return self.readout(params, a * self.state(carry) + b, u)

    def initial_carry(self, params: Params, batch_shape: tuple[int, ...] = ()) -> Carry:
        return jnp.zeros((*tuple(batch_shape), self.hidden_size), params["w_ih"].dtype)


def g(x: Array) -> Array:
    """Feng et al.'s positive candidate map: ``x + 0.5`` for ``x >= 0``, ``sigmoid(x)`` below."""
    return jnp.where(x >= 0, x + 0.5, jax.nn.sigmoid(x))


def log_g(x: Array) -> Array:
    """``log g(x)`` without forming ``g``: ``log(x + 0.5)`` for ``x >= 0``, ``-softplus(-x)`` below."""
    return jnp.where(x >= 0, jnp.log(jax.nn.relu(x) + 0.5), -jax.nn.softplus(-x))
