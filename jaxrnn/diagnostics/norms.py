"""Euclidean norms that neither underflow nor overflow in float32: the primitive every diagnostic uses.

Gradients of a recurrent network routinely span 30 orders of magnitude. ``sqrt(sum(g**2))`` squares
them first, so in float32 a norm of 1e-30 comes out as 0 (1e-60 underflows) and one of 1e20 as inf.
Scaling by the largest magnitude first, ``m * sqrt(sum((g / m)**2))`` (the LAPACK ``nrm2`` idea),
keeps every intermediate in range; the log10 form also represents norms below float32's range.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp

from jaxrnn._typing import Array

Axes = int | Sequence[int] | None


def _accumulation_dtype(x: Array) -> Any:
    return jnp.promote_types(x.dtype, jnp.float32)


def scaled_sum_of_squares(x: Array, axis: Axes = None) -> tuple[Array, Array]:
    """Returns ``(m, s)`` with ``m = max|x|`` and ``s = sum((x / m)**2)`` over `axis`, so ``||x|| = m sqrt(s)``.

    ``s`` lies in ``[1, x.size]`` whenever ``m`` is finite and non-zero; for ``m == 0`` both are 0.
    """
    a = jnp.abs(jnp.asarray(x).astype(_accumulation_dtype(jnp.asarray(x))))
    m = jnp.max(a, axis=axis, keepdims=True, initial=0.0)
    safe_m = jnp.where((m > 0) & jnp.isfinite(m), m, 1.0)
    s = jnp.sum(jnp.square(a / safe_m), axis=axis)
    return jnp.squeeze(m, axis=axis) if axis is not None else m.reshape(()), s


def safe_norm(x: Array, axis: Axes = None) -> Array:
    """Euclidean norm over `axis` (all axes by default) that stays accurate from 1e-38 to 1e38 in float32.

    Example::

        g = jnp.full((64,), 1e-31, jnp.float32)
        jnp.sqrt(jnp.sum(g**2))      # 0.0   (the squares underflow)
        safe_norm(g)                 # 8e-31 (correct)
    """
    m, s = scaled_sum_of_squares(x, axis)
    return m * jnp.sqrt(s)


def safe_log10_norm(x: Array, axis: Axes = None) -> Array:
    """``log10`` of the Euclidean norm over `axis`, computed without forming the norm (``-inf`` for zero)."""
    m, s = scaled_sum_of_squares(x, axis)
    return jnp.log10(m) + 0.5 * jnp.log10(s)


def combine(parts: Sequence[tuple[Array, Array]]) -> tuple[Array, Array]:
    """Merges per-piece ``(m, s)`` pairs from `scaled_sum_of_squares` into one pair for their union."""
    ms = jnp.stack([m for m, _ in parts])
    m = jnp.max(ms)
    safe_m = jnp.where((m > 0) & jnp.isfinite(m), m, 1.0)
    s = sum(s_i * jnp.square(m_i / safe_m) for m_i, s_i in parts)
    return m, s


def tree_norm(tree: Any) -> Array:
    """Global Euclidean norm of all leaves of a pytree (as `optax.tree.norm`, but underflow-safe)."""
    leaves = jax.tree_util.tree_leaves(tree)
    if not leaves:
        return jnp.zeros((), jnp.float32)
    m, s = combine([scaled_sum_of_squares(leaf) for leaf in leaves])
    return m * jnp.sqrt(s)
