"""Step Jacobians ``d carry_t / d carry_{t-1}`` along a trajectory, and the growth rate they imply.

Back-propagation through time multiplies the transposed step Jacobians, so the gradient reaching step
``t`` from step ``T`` is bounded by ``prod_k ||J_k||`` and, for long spans, grows or shrinks like
``exp(lambda (T - t))`` with ``lambda`` the largest Lyapunov exponent of the trajectory: the quantity
Pascanu et al. (2013) reason with (``||J_k|| < 1`` for all k is sufficient for vanishing gradients).

References:
  Pascanu, Mikolov & Bengio, "On the difficulty of training recurrent neural networks", ICML 2013.
  Benettin, Galgani, Giorgilli & Strelcyn, "Lyapunov characteristic exponents for smooth dynamical
  systems", Meccanica 15, 1980 (the renormalised tangent-vector estimate used here).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jaxrnn import _checks
from jaxrnn._typing import Array, Carry, Params, PRNGKey
from jaxrnn.cells.base import Cell
from jaxrnn.layers import RNN


class JacobianNorms(NamedTuple):
    """The result of `jacobian_norms`; per-step fields are ``[*batch, T]``, rates ``[*batch]``, in nats.

    Attributes:
      carry: spectral norm ``||d carry_t / d carry_{t-1}||_2`` of the full state (``(h, c)`` for an
        LSTM: the honest object, since the cell state is the LSTM's memory path).
      hidden: spectral norm of the partial Jacobian ``dh_t / dh_{t-1}`` with the rest of the carry held
        fixed; equal to `carry` for cells whose carry is ``h`` (SimpleRNN, GRU).
      log_growth: ``log ||J_t v_{t-1}||`` for the renormalised tangent vector ``v`` (its sum over steps is
        ``log ||J_T ... J_1 v_0||`` exactly).
      lyapunov: mean of `log_growth`: the largest-Lyapunov-exponent estimate (per step; < 0 contracts).
      log_norm_rate: mean of ``log carry``: the Pascanu et al. upper bound on `lyapunov`.
    """

    carry: Array
    hidden: Array
    log_growth: Array
    lyapunov: Array
    log_norm_rate: Array


def _as_cell(fn: str, cell: Any) -> Cell:
    if isinstance(cell, RNN):
        return cell.cell
    if not isinstance(cell, Cell):
        raise TypeError(f"{fn}: argument 'cell' must be a jaxrnn cell or RNN layer, got {type(cell).__name__}")
    return cell


def jacobian_norms(
    cell: Cell | RNN,
    params: Params,
    xs: Array,
    *,
    carry: Carry | None = None,
    key: PRNGKey | None = None,
) -> JacobianNorms:
    """Spectral norms of the step Jacobians along the trajectory driven by `xs`, and the growth rate.

    Args:
      cell: a jaxrnn cell (or an `RNN`, whose cell is used).
      params: the cell's parameters.
      xs: inputs ``[T, F]`` (one sequence) or ``[*batch, T, F]``.
      carry: optional initial carry with the batch dims (default: zeros).
      key: draws the tangent vector's start (a unit vector per sequence); default: the normalised
        all-ones vector, so results are deterministic.

    Returns:
      A `JacobianNorms`. ``J_t = d carry_t / d carry_{t-1}`` is formed by forward-mode differentiation
      of one step (its size is the carry size D, 2H for an LSTM), so this is a diagnostic for
      moderate H, not something for the training loop.

    Example::

        cell = jaxrnn.SimpleRNN(32)
        params = cell.init(jax.random.key(0), input_size=2)
        out = jacobian_norms(cell, params, jax.random.normal(jax.random.key(1), (100, 2)))
        out.carry.shape, out.lyapunov    # (100,), e.g. -0.05: perturbations shrink ~5% per step
    """
    fn = "jacobian_norms"
    cell = _as_cell(fn, cell)
    input_size = cell.check_params(fn, params)
    xs = _checks.check_float_array(fn, "xs", xs, min_ndim=2, layout="[*batch, T, F]")
    _checks.check_feature_size(fn, "xs", xs, input_size, "[*batch, T, F]")
    batch_shape, num_steps = tuple(xs.shape[:-2]), xs.shape[-2]
    expected = jax.eval_shape(lambda p: cell.initial_carry(p, batch_shape), params)
    if carry is None:
        carry = cell.initial_carry(params, batch_shape)
    else:
        _checks.check_tree_like(fn, "carry", carry, expected)
    if key is not None:
        _checks.check_key(fn, "key", key)
    batch = math.prod(batch_shape)
    flat_xs = xs.reshape(batch, num_steps, xs.shape[-1])
    flat_carry = jax.tree.map(lambda c: c.reshape(batch, *c.shape[len(batch_shape) :]), carry)
    keys = jax.random.split(key, batch) if key is not None else None
    out = jax.vmap(lambda x, c, k: _one_sequence(cell, params, x, c, k))(flat_xs, flat_carry, keys)
    return jax.tree.map(lambda a: a.reshape(*batch_shape, *a.shape[1:]), out)


def _one_sequence(cell: Cell, params: Params, xs: Array, carry: Carry, key: PRNGKey | None) -> JacobianNorms:
    flat, unravel = ravel_pytree(carry)
    size = flat.shape[0]
    # Positions of h inside the flat carry: ravel an index-valued carry and read its hidden part.
    hidden_idx = cell.hidden(unravel(jnp.arange(size, dtype=flat.dtype))).astype(jnp.int32)
    if key is None:
        v0 = jnp.ones((size,), flat.dtype)
    else:
        v0 = jax.random.normal(key, (size,), flat.dtype)
    v0 = v0 / jnp.linalg.norm(v0)

    def flat_step(c: Array, u: Array) -> Array:
        return ravel_pytree(cell.recur(params, unravel(c), u)[0])[0]

    def body(state: tuple[Array, Array], u: Array) -> tuple[tuple[Array, Array], tuple[Array, Array, Array]]:
        c, v = state
        jac = jax.jacfwd(flat_step)(c, u)  # [D, D], rows: new carry, columns: old carry
        carry_norm = jnp.linalg.norm(jac, ord=2)
        hidden_norm = jnp.linalg.norm(jac[hidden_idx][:, hidden_idx], ord=2)
        w = jac @ v
        growth = jnp.linalg.norm(w)
        return (flat_step(c, u), w / growth), (carry_norm, hidden_norm, jnp.log(growth))

    us = cell.project(params, xs)
    _, (carry_norms, hidden_norms, log_growth) = jax.lax.scan(body, (flat, v0), us)
    return JacobianNorms(
        carry=carry_norms,
        hidden=hidden_norms,
        log_growth=log_growth,
        lyapunov=jnp.mean(log_growth),
        log_norm_rate=jnp.mean(jnp.log(carry_norms)),
    )
