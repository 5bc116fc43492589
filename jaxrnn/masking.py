"""Helpers for right-padded batches of variable-length sequences."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxrnn._typing import Array


def sequence_mask(lengths: Array, num_steps: int, *, time_axis: int = -1) -> Array:
    """Boolean mask ``[*lengths.shape, num_steps]`` (time last, or at `time_axis`): True where t < length.

    Example::

        sequence_mask(jnp.array([2, 0, 3]), 3)
        # [[ True,  True, False], [False, False, False], [ True,  True,  True]]
    """
    mask = jnp.arange(num_steps) < jnp.asarray(lengths)[..., None]
    return jnp.moveaxis(mask, -1, time_axis)


def reverse_padded(xs: Array, lengths: Array | None, *, time_axis: int = -2) -> Array:
    """Reverses each sequence within its own length; padding stays at the end.

    ``xs`` is ``[*batch, T, ...]`` with time at `time_axis` (batch dims before it) and
    ``lengths`` has the batch shape. Without lengths this is a plain flip along time.
    PyTorch users know this as ``reverse_padded_sequence`` (pytorch#1794).
    """
    time_axis = time_axis % xs.ndim
    if lengths is None:
        return jnp.flip(xs, axis=time_axis)
    num_steps = xs.shape[time_axis]
    t = jnp.arange(num_steps)
    lengths = jnp.asarray(lengths)[..., None]
    src = jnp.where(t < lengths, lengths - 1 - t, t)  # [*batch, T]
    src = src.reshape(src.shape + (1,) * (xs.ndim - time_axis - 1))
    return jnp.take_along_axis(xs, src, axis=time_axis)


def where_valid(valid: Array, new: jax.Array, old: jax.Array) -> jax.Array:
    """``new`` where the per-example flag `valid` [B] is True, else ``old`` (leaves [B, ...])."""
    return jnp.where(valid.reshape(valid.shape + (1,) * (new.ndim - valid.ndim)), new, old)
