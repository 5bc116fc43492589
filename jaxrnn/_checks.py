"""Argument checks that fail early, in Python, with the argument's name, the expected and the actual value.

Every public entry point validates what it can see without running XLA: ranks, sizes, dtypes and
pytree structures are static under `jax.jit`, so these checks also run (once, at trace time) inside
jitted code. Values (e.g. whether `lengths` lies in [0, T]) are checked only when they are concrete.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np


def _where(fn: str, arg: str) -> str:
    return f"{fn}: argument '{arg}'"


def check_positive_int(fn: str, arg: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{_where(fn, arg)} must be a positive int, got {value!r}")


def check_non_negative_int(fn: str, arg: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{_where(fn, arg)} must be a non-negative int, got {value!r}")


def check_choice(fn: str, arg: str, value: Any, choices: Sequence[Any]) -> None:
    if value not in choices:
        raise ValueError(f"{_where(fn, arg)} must be one of {list(choices)}, got {value!r}")


def check_probability(fn: str, arg: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{_where(fn, arg)} must be a float in [0, 1), got {value!r}")


def check_unroll(fn: str, value: Any) -> None:
    if isinstance(value, bool):
        return
    check_positive_int(fn, "unroll", value)


def check_dtype_like(fn: str, arg: str, value: Any) -> None:
    try:
        dtype = jnp.dtype(value)
    except TypeError as err:
        raise TypeError(f"{_where(fn, arg)} must be a JAX dtype, got {value!r}") from err
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"{_where(fn, arg)} must be a floating dtype, got {dtype}")


def check_key(fn: str, arg: str, key: Any) -> None:
    if not isinstance(key, jax.Array):
        raise TypeError(f"{_where(fn, arg)} must be a jax.random key, got {type(key).__name__}")
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return
    if key.dtype != jnp.uint32 or key.shape[-1:] != (2,):
        raise TypeError(
            f"{_where(fn, arg)} must be a jax.random key (jax.random.key or PRNGKey), "
            f"got an array of dtype {key.dtype} and shape {key.shape}"
        )


def check_float_array(fn: str, arg: str, x: Any, *, min_ndim: int, layout: str) -> jax.Array:
    """Returns `x` as an array after checking it is floating with at least `min_ndim` dims."""
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise TypeError(f"{_where(fn, arg)} must be an array of shape {layout}, got {type(x).__name__}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{_where(fn, arg)} must have a floating dtype, got {x.dtype}")
    if x.ndim < min_ndim:
        raise ValueError(
            f"{_where(fn, arg)} must have shape {layout} (rank >= {min_ndim}), got shape {tuple(x.shape)}"
        )
    return jnp.asarray(x)


def check_feature_size(fn: str, arg: str, x: jax.Array, expected: int, layout: str) -> None:
    if x.shape[-1] != expected:
        raise ValueError(
            f"{_where(fn, arg)} must have feature size {expected} (the input size the params were "
            f"initialised for), as in {layout}; got shape {tuple(x.shape)}"
        )


def check_lengths(fn: str, lengths: Any, batch_shape: tuple[int, ...], num_steps: int) -> jax.Array:
    """Checks `lengths` has the batch shape and an integer dtype; checks its range when concrete."""
    if not hasattr(lengths, "shape") or not hasattr(lengths, "dtype"):
        lengths = np.asarray(lengths)
    if not jnp.issubdtype(lengths.dtype, jnp.integer):
        raise TypeError(f"{_where(fn, 'lengths')} must have an integer dtype, got {lengths.dtype}")
    if tuple(lengths.shape) != tuple(batch_shape):
        raise ValueError(
            f"{_where(fn, 'lengths')} must have the batch shape of 'xs', {tuple(batch_shape)}, "
            f"got shape {tuple(lengths.shape)}"
        )
    if not isinstance(lengths, jax.core.Tracer) and lengths.size:
        concrete = np.asarray(lengths)
        lo, hi = int(concrete.min()), int(concrete.max())
        if lo < 0 or hi > num_steps:
            raise ValueError(
                f"{_where(fn, 'lengths')} must lie in [0, {num_steps}] (the number of time steps), "
                f"got values in [{lo}, {hi}]"
            )
    return jnp.asarray(lengths)


def _describe(tree: Any) -> str:
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    shapes = ", ".join(f"{jax.tree_util.keystr(p) or 'leaf'}: {tuple(np.shape(v))}" for p, v in leaves)
    return f"{jax.tree_util.tree_structure(tree)} with {{{shapes}}}"


def check_tree_like(fn: str, arg: str, actual: Any, expected: Any, *, check_dtype: bool = False) -> None:
    """Checks `actual` has the pytree structure and leaf shapes of `expected` (arrays or ShapeDtypeStructs)."""
    exp_def = jax.tree_util.tree_structure(expected)
    act_def = jax.tree_util.tree_structure(actual)
    mismatch = exp_def != act_def
    if not mismatch:
        for a, e in zip(jax.tree_util.tree_leaves(actual), jax.tree_util.tree_leaves(expected)):
            if not hasattr(a, "shape") or tuple(a.shape) != tuple(e.shape):
                mismatch = True
                break
            if check_dtype and jnp.dtype(a.dtype) != jnp.dtype(e.dtype):
                mismatch = True
                break
    if mismatch:
        raise ValueError(f"{_where(fn, arg)} must be {_describe(expected)}; got {_describe(actual)}")
