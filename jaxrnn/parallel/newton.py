"""DEER and quasi-DEER: a nonlinear recurrence evaluated by Newton iterations, each one parallel over time.

The states of ``s_t = f(s_{t-1}, x_t)`` are the root of the T equations ``s_t - f(s_{t-1}, x_t) = 0``.
Newton's method linearises ``f`` around the current guess of every step at once,

    s_t^(k+1) = J_t s_{t-1}^(k+1) + (f(s_{t-1}^(k), x_t) - J_t s_{t-1}^(k)),    J_t = df/ds at s_{t-1}^(k),

a linear recurrence solved by an associative scan in O(log T) depth (`jaxrnn.parallel.scan`): DEER
(Lim et al. 2024) uses the dense ``J_t`` (O(T n^2) memory, O(T n^3) work per iteration); quasi-DEER
(Gonzalez et al. 2024) only its diagonal (O(T n) memory and work, more iterations). Step 0 is exact
after one iteration, step k after k + 1, so the iteration ends in at most T steps; for contracting
dynamics it converges in a handful. It stops when the largest change of any state is below
``tol * max(1, max |s|)`` or after ``max_iter`` iterations; if it has not converged then, the ordinary
sequential scan computes the result instead (``fallback``, chosen by `lax.cond` inside jit), and
`NewtonInfo` says so.

Gradients come from the implicit function theorem at the solution, not from differentiating the
iterations: the cotangents ``mu_t`` of all states satisfy the adjoint linear recurrence
``mu_t = J_{t+1}^T mu_{t+1} + e_t`` (one extra linear solve, backwards in time), after which one
vectorised VJP of ``f`` over all steps gives the parameter and input gradients. DEER solves the
adjoint with a dense reverse associative scan; quasi-DEER iterates it with the diagonal as
preconditioner and exact ``J^T mu`` products (so its gradients are exact, not those of the diagonal
approximation); either falls back to the sequential adjoint scan where its solve does not converge.

References:
  Lim, Zhu, Selfridge & Kasim, "Parallelizing non-linear sequential models over the sequence
  length", ICLR 2024, arXiv:2309.12252.
  Gonzalez, Warrington, Smith & Linderman, "Towards scalable and stable parallelization of nonlinear
  RNNs", NeurIPS 2024, arXiv:2407.19115.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn._typing import Array, Carry, Params
from jaxrnn.parallel.scan import linear_recurrence, matrix_recurrence

#: ``step(params, carry, x_t) -> (carry, y_t)`` for one sequence (no batch dims).
Step = Callable[[Params, Carry, Any], tuple[Carry, Any]]
#: ``diagonal(params, carry, x_t) -> d carry_t / d carry_{t-1}`` (diagonal only, shaped like the carry).
Diagonal = Callable[[Params, Carry, Any], Carry]


class NewtonInfo(NamedTuple):
    """How a parallel-in-time evaluation went (scalars, for the whole batch).

    Attributes:
      iterations: Newton iterations run (0 for an exact parallel scan of a linear cell).
      converged: whether the last update was within the tolerance.
      fell_back: whether the sequential scan produced the result instead.
      error: the last relative update ``max |s^(k+1) - s^(k)| / max(1, max |s^(k+1)|)``.
    """

    iterations: Array
    converged: Array
    fell_back: Array
    error: Array

    @classmethod
    def exact(cls) -> NewtonInfo:
        """The info of a direct (non-iterative) evaluation."""
        return cls(jnp.asarray(0, jnp.int32), jnp.asarray(True), jnp.asarray(False), jnp.asarray(0.0, jnp.float32))


def default_tol(dtype: Any) -> float:
    """The relative tolerance used when none is given: 1e-5 for float32, 1e-10 for float64."""
    return {8: 1e-10, 4: 1e-5}.get(jnp.dtype(dtype).itemsize, 1e-2)


class _Flat:
    """A carry pytree (leaves ``[*lead, ...]``) as one vector per sequence: ``[*lead, n]``."""

    def __init__(self, carry0: Carry) -> None:
        leaves, self.treedef = jax.tree.flatten(carry0)
        self.shapes = [leaf.shape[1:] for leaf in leaves]
        self.splits = np.cumsum([math.prod(s) for s in self.shapes])[:-1].tolist()

    def ravel(self, tree: Carry, lead: int) -> Array:
        leaves = jax.tree.leaves(tree)
        return jnp.concatenate([leaf.reshape(*leaf.shape[:lead], -1) for leaf in leaves], axis=-1)

    def unravel(self, flat: Array) -> Carry:
        lead = flat.shape[:-1]
        parts = jnp.split(flat, self.splits, axis=-1)
        return self.treedef.unflatten([p.reshape(*lead, *s) for p, s in zip(parts, self.shapes)])


def _shift(states: Array, s0: Array) -> Array:
    """``[s0, s_0, ..., s_{T-2}]``: the state each step starts from."""
    return jnp.concatenate([s0[None], states[:-1]], axis=0)


def _shift_left(a: Array) -> Array:
    """``[a_1, ..., a_{T-1}, 0]``."""
    return jnp.concatenate([a[1:], jnp.zeros_like(a[:1])], axis=0)


def _relative_change(delta: Array, new: Array) -> Array:
    return jnp.max(jnp.abs(delta)) / jnp.maximum(1.0, jnp.max(jnp.abs(new)))


def _sanitise(s: Array) -> Array:
    """Keeps a diverging iterate finite, so the iteration runs out its cap and the fallback takes over."""
    limit = float(np.sqrt(np.finfo(s.dtype).max))
    return jnp.clip(jnp.nan_to_num(s, nan=0.0, posinf=limit, neginf=-limit), -limit, limit)


def newton_scan(
    step: Step,
    params: Params,
    carry0: Carry,
    xs: Any,
    *,
    quasi: bool = False,
    tol: float | None = None,
    max_iter: int = 100,
    fallback: bool = True,
    diagonal: Diagonal | None = None,
    unroll: int | bool = 1,
) -> tuple[Carry, Any, NewtonInfo]:
    """Evaluates ``carry_t, y_t = step(params, carry_{t-1}, x_t)`` for all t by DEER or quasi-DEER.

    Args:
      step: one step of one sequence (no batch dims): ``(params, carry, x_t) -> (carry, y_t)``.
      params: the step's parameters (differentiable).
      carry0: the initial carries, leaves ``[B, ...]`` (real floating, one dtype).
      xs: the inputs, leaves ``[T, B, ...]`` (floating leaves are differentiable; others, e.g. masks, not).
      quasi: the diagonal of the Jacobian (quasi-DEER) instead of the dense one (DEER).
      tol: relative tolerance (default `default_tol` of the carry dtype).
      max_iter: iteration cap.
      fallback: when not converged, return the sequential scan's result (else the last iterate).
      diagonal: the Jacobian's diagonal for quasi-DEER, if cheaper than ``diag(jacfwd(step))``.
      unroll: ``lax.scan`` unroll of the sequential fallback.

    Returns:
      ``(carries, ys, info)``: the carry after every step (leaves ``[T, B, ...]``), the outputs, and
      a `NewtonInfo`. Reverse-mode differentiable by the implicit function theorem (no forward mode).

    Example::

        def step(params, h, x):                      # an Elman step for one sequence
            h = jnp.tanh(x @ params["w"] + h @ params["u"])
            return h, h

        hs, ys, info = newton_scan(step, params, h0, xs)     # h0: [B, n], xs: [T, B, F]
        info.iterations, info.converged
    """
    leaves = jax.tree.leaves(carry0)
    dtypes = {jnp.dtype(leaf.dtype) for leaf in leaves}
    if len(dtypes) != 1 or not jnp.issubdtype(next(iter(dtypes)), jnp.floating):
        raise ValueError(
            "newton_scan: argument 'carry0' must have real floating leaves of one dtype (DEER linearises "
            f"a real state), got dtypes {sorted(str(d) for d in dtypes)}"
        )
    dtype = next(iter(dtypes))
    tol = default_tol(dtype) if tol is None else float(tol)
    flat = _Flat(carry0)
    x_leaves, x_def = jax.tree.flatten(xs)
    diff_index = [i for i, leaf in enumerate(x_leaves) if jnp.issubdtype(leaf.dtype, jnp.inexact)]

    def merge(x_diff: list, x_rest: list) -> Any:
        it_diff, it_rest = iter(x_diff), iter(x_rest)
        return x_def.unflatten([next(it_diff) if i in diff_index else next(it_rest) for i in range(len(x_leaves))])

    def f(p: Params, s: Array, x: Any) -> tuple[Array, Any]:
        c, y = step(p, flat.unravel(s), x)
        return flat.ravel(c, 0), y

    def linearise(p: Params, s: Array, x: Any) -> tuple[Array, Array]:
        """``(f(s), J)``, J dense or its diagonal."""
        if quasi and diagonal is not None:
            return f(p, s, x)[0], flat.ravel(diagonal(p, flat.unravel(s), x), 0)

        def with_value(s_: Array) -> tuple[Array, Array]:
            out = f(p, s_, x)[0]
            return out, out

        jac, fs = jax.jacfwd(with_value, has_aux=True)(s)
        return fs, (jnp.diagonal(jac) if quasi else jac)

    def over_batch(fn: Callable) -> Callable:
        return jax.vmap(fn, in_axes=(None, 0, 0))

    step_b = over_batch(f)
    step_all = jax.vmap(step_b, in_axes=(None, 0, 0))
    linearise_all = jax.vmap(over_batch(linearise), in_axes=(None, 0, 0))

    def until_converged(body: Callable, init: Array) -> tuple[Array, Array, Array]:
        def cond(state):
            k, _, err = state
            return (k < max_iter) & ~(err <= tol)

        inf = jnp.asarray(jnp.inf, dtype)
        return jax.lax.while_loop(cond, body, (jnp.asarray(0, jnp.int32), init, inf))

    def newton(p: Params, s0: Array, x: Any) -> tuple[Array, Array, Array]:
        def body(state):
            k, states, _ = state
            prev = _shift(states, s0)
            fs, jac = linearise_all(p, prev, x)
            if quasi:
                new = linear_recurrence(jac, fs - jac * prev, s0)
            else:
                new = matrix_recurrence(jac, fs - (jac @ prev[..., None])[..., 0], s0)
            new = _sanitise(new)
            return k + 1, new, _relative_change(new - states, new)

        return until_converged(body, jnp.broadcast_to(s0, (x_leaves[0].shape[0], *s0.shape)))

    def sequential(p: Params, s0: Array, x: Any) -> tuple[Array, Any]:
        def body(s, x_t):
            new, y = step_b(p, s, x_t)
            return new, (new, y)

        return jax.lax.scan(body, s0, x, unroll=unroll)[1]

    def forward(p: Params, s0: Array, x_diff: list, x_rest: list):
        x = merge(x_diff, x_rest)
        k, states, err = newton(p, s0, x)
        converged = err <= tol
        accept = lambda: step_all(p, _shift(states, s0), x)
        if fallback:
            states, ys = jax.lax.cond(converged, accept, lambda: sequential(p, s0, x))
        else:
            states, ys = accept()
        fell_back = jnp.logical_not(converged) if fallback else jnp.asarray(False)
        info = NewtonInfo(k, converged, fell_back, err.astype(jnp.float32))
        return (states, ys, info), (p, s0, x_diff, x_rest, states, converged)

    @jax.custom_vjp
    def solve(p, s0, x_diff, x_rest):
        return forward(p, s0, x_diff, x_rest)[0]

    def solve_bwd(residuals, cotangents):
        p, s0, x_diff, x_rest, states, converged = residuals
        d_states, d_ys, _ = cotangents
        x = merge(x_diff, x_rest)
        prev = _shift(states, s0)
        _, vjp_prev = jax.vjp(lambda sp: step_all(p, sp, x), prev)
        # e_t: what reaches s_t directly and through y_{t+1}; mu_t = J_{t+1}^T mu_{t+1} + e_t
        e = d_states + _shift_left(vjp_prev((jnp.zeros_like(states), d_ys))[0])
        transpose = lambda mu: vjp_prev((mu, jax.tree.map(jnp.zeros_like, d_ys)))[0]

        def sequential_adjoint():
            def body(g, inputs):
                e_t, prev_t, x_t = inputs
                mu_t = e_t + g
                _, vjp_t = jax.vjp(lambda s: step_b(p, s, x_t)[0], prev_t)
                return vjp_t(mu_t)[0], mu_t

            return jax.lax.scan(body, jnp.zeros_like(s0), (e, prev, x), reverse=True, unroll=unroll)[1]

        if quasi:
            diag_next = _shift_left(linearise_all(p, prev, x)[1])

            def body(state):
                k, mu, _ = state
                residual = e + _shift_left(transpose(mu)) - mu
                delta = _sanitise(linear_recurrence(diag_next, residual, reverse=True))
                new = mu + delta
                return k + 1, new, _relative_change(delta, new)

            _, mu, err = until_converged(body, jnp.zeros_like(e))
            mu = jax.lax.cond(err <= tol, lambda: mu, sequential_adjoint)
        else:

            def dense_adjoint():
                jac = linearise_all(p, prev, x)[1]
                return matrix_recurrence(_shift_left(jnp.swapaxes(jac, -1, -2)), e, reverse=True)

            # an unconverged forward may be expanding: products of its Jacobians can overflow in a scan
            mu = jax.lax.cond(converged, dense_adjoint, sequential_adjoint)

        _, vjp_all = jax.vjp(lambda p_, sp, xd: step_all(p_, sp, merge(xd, x_rest)), p, prev, x_diff)
        d_p, d_prev, d_x = vjp_all((mu, d_ys))
        return d_p, d_prev[0], d_x, None

    solve.defvjp(lambda *args: forward(*args), solve_bwd)
    s0 = flat.ravel(carry0, 1)
    x_diff = [x_leaves[i] for i in diff_index]
    x_rest = [leaf for i, leaf in enumerate(x_leaves) if i not in diff_index]
    states, ys, info = solve(params, s0, x_diff, x_rest)
    return flat.unravel(states), ys, info


__all__ = ["NewtonInfo", "default_tol", "newton_scan"]
