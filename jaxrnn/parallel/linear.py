"""``RNN(method="parallel")``: a linear-recurrence cell over all steps by one associative scan."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxrnn._typing import Array, Carry, Params
from jaxrnn.cells.linear import LinearCell
from jaxrnn.masking import where_valid
from jaxrnn.parallel.scan import linear_recurrence, log_linear_recurrence


def _per_step(mask: Array, like: Array) -> Array:
    """A ``[T, B]`` mask broadcastable against ``[T, B, ...]``."""
    return mask.reshape(mask.shape + (1,) * (like.ndim - mask.ndim))


def last_valid(carries: Carry, valid: Array | None, initial: Carry) -> Carry:
    """Each sequence's carry after its last valid step (``carries`` ``[T, B, ...]``, `valid` ``[T, B]``),
    or `initial` where no step is valid; the last step's carry without a mask."""
    if valid is None:
        return jax.tree.map(lambda c: c[-1], carries)
    num_steps = valid.shape[0]
    last = num_steps - 1 - jnp.argmax(valid[::-1], axis=0)  # [B]
    any_valid = valid.any(axis=0)

    def pick(c: Array, c0: Array) -> Array:
        index = last.reshape((1, -1) + (1,) * (c.ndim - 2))
        return where_valid(any_valid, jnp.take_along_axis(c, index, axis=0)[0], c0)

    return jax.tree.map(pick, carries, initial)


def linear_scan(
    cell: LinearCell, params: Params, carry: Carry, us: Array, valid: Array | None, probe: Array | None
) -> tuple[Carry, Array]:
    """``(final_carry, ys)`` of `cell` over time-major projected inputs `us` ``[T, B, ...]``, forward in time.

    Same semantics as the sequential scan with `jaxrnn.RNN`'s step finisher: a padded step (`valid`
    False) keeps the carry (``a = 1, b = 0``, the scan's identity); the probe is added to the hidden
    state after each step (an extra ``b_t`` when the hidden state is the linear state). The scan runs
    in log space for `log_space` cells unless a probe is given (``b + p`` may have any sign).
    """
    s0 = cell.state(carry)
    if cell.log_space and probe is None:
        log_a, log_b = cell.log_coefficients(params, us)
        if valid is not None:
            keep = _per_step(valid, log_a)
            log_a, log_b = jnp.where(keep, log_a, 0.0), jnp.where(keep, log_b, -jnp.inf)
        states = log_linear_recurrence(log_a, log_b, s0)
    else:
        a, b = cell.coefficients(params, us)
        if probe is not None and cell.hidden_is_state:
            b = b + probe
        if valid is not None:
            keep = _per_step(valid, a)
            a, b = jnp.where(keep, a, jnp.ones_like(a)), jnp.where(keep, b, jnp.zeros_like(b))
        states = linear_recurrence(a, b, s0)
    carries, ys = cell.readout(params, states, us)
    if probe is not None and not cell.hidden_is_state:
        carries, ys = cell.with_hidden(carries, cell.hidden(carries) + probe), ys + probe
    return last_valid(carries, valid, carry), ys
