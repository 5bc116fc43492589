"""Linear recurrences ``h_t = A_t h_{t-1} + b_t`` over all steps at once, by `jax.lax.associative_scan`.

Each step is the affine map ``h -> A h + b``; composing two of them, first ``(A_1, b_1)`` then
``(A_2, b_2)``, gives ``(A_2 A_1, A_2 b_1 + b_2)``, which is associative, so the prefix compositions
of T steps take O(log T) parallel depth and O(T) work (Blelloch 1990). With elementwise (diagonal)
``A`` this is the scan of linear RNNs and state-space models (Martin & Cundy 2018; Orvieto et al.
2023); with dense ``A`` it is the linear solve inside each DEER Newton step (Lim et al. 2024).

Time is the leading axis of every array; ``A`` and ``b`` may have any trailing dims that broadcast.

References:
  Blelloch, "Prefix sums and their applications", CMU-CS-90-190, 1990.
  Martin & Cundy, "Parallelizing linear recurrent neural nets over sequence length", ICLR 2018.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxrnn._typing import Array


def _affine(earlier: tuple[Array, Array], later: tuple[Array, Array]) -> tuple[Array, Array]:
    a1, b1 = earlier
    a2, b2 = later
    return a2 * a1, a2 * b1 + b2


def _log_affine(earlier: tuple[Array, Array], later: tuple[Array, Array]) -> tuple[Array, Array]:
    la1, lb1 = earlier
    la2, lb2 = later
    return la1 + la2, logaddexp(la2 + lb1, lb2)


def _matrix_affine(earlier: tuple[Array, Array], later: tuple[Array, Array]) -> tuple[Array, Array]:
    a1, b1 = earlier
    a2, b2 = later
    return a2 @ a1, (a2 @ b1[..., None])[..., 0] + b2


def logaddexp(x: Array, y: Array) -> Array:
    """``log(exp(x) + exp(y))`` that is ``-inf`` with finite gradients (zero) where both are ``-inf``.

    `jnp.logaddexp` gives NaN gradients there, and ``(0, -inf)`` is the identity element of the
    log-space scan (a padded step)."""
    m = jnp.maximum(x, y)
    m = jnp.where(jnp.isfinite(m), m, 0.0)
    s = jnp.exp(x - m) + jnp.exp(y - m)
    positive = s > 0
    return jnp.where(positive, m + jnp.log(jnp.where(positive, s, 1.0)), -jnp.inf)


def linear_recurrence(a: Array, b: Array, h0: Array | None = None, *, reverse: bool = False) -> Array:
    """All ``h_t = a_t * h_{t-1} + b_t`` (elementwise; real or complex) for ``t = 0..T-1``, ``h_{-1} = h0``
    (zero if None); with `reverse`, ``h_t = a_t * h_{t+1} + b_t`` from ``h_T = h0``.

    Example::

        a = jnp.full((5, 3), 0.5); b = jnp.ones((5, 3))
        linear_recurrence(a, b)[-1]     # 1 + 0.5 + 0.25 + 0.125 + 0.0625 = 1.9375
    """
    prod_a, h = jax.lax.associative_scan(_affine, (a, b), reverse=reverse)
    return h if h0 is None else prod_a * h0 + h


def log_linear_recurrence(log_a: Array, log_b: Array, h0: Array | None = None, *, reverse: bool = False) -> Array:
    """`linear_recurrence` for positive ``b`` given as logs: the scan adds logs and takes log-sum-exps,
    so no product of many ``a_t < 1`` underflows before it meets its ``b``, and the result is
    ``exp`` of a log (Feng et al. 2024, after Heinsen 2023; pairwise, which keeps float32 precision
    at long T where the cumsum / logcumsumexp form subtracts two large cumulative sums). The initial
    state may have any sign: ``(prod a) * h0`` is added outside the log scan.

    A step with ``log_a = 0, log_b = -inf`` is the identity (it keeps the state), with zero gradients.
    """
    log_prod_a, log_h = jax.lax.associative_scan(_log_affine, (log_a, log_b), reverse=reverse)
    h = jnp.exp(log_h)
    return h if h0 is None else jnp.exp(log_prod_a) * h0 + h


def matrix_recurrence(a: Array, b: Array, h0: Array | None = None, *, reverse: bool = False) -> Array:
    """All ``h_t = a_t @ h_{t-1} + b_t`` for dense ``a`` ``[T, ..., n, n]`` and ``b`` ``[T, ..., n]``.

    O(T n^3) work and O(T n^2) memory: the price of DEER's dense Newton steps."""
    if h0 is not None:
        first = 0 if not reverse else -1
        b = b.at[first].add((a[first] @ h0[..., None])[..., 0])
    return jax.lax.associative_scan(_matrix_affine, (a, b), reverse=reverse)[1]


__all__ = ["linear_recurrence", "log_linear_recurrence", "logaddexp", "matrix_recurrence"]
