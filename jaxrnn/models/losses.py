"""Losses and metrics over right-padded batches: every mean is over valid positions only."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
import optax

from jaxrnn._typing import Array
from jaxrnn.masking import sequence_mask


def masked_mean(values: Array, mask: Array | None) -> Array:
    """Mean of `values` where `mask` is True (0 where nothing is valid); the plain mean if mask is None."""
    if mask is None:
        return jnp.mean(values)
    mask = jnp.broadcast_to(mask, values.shape)
    total = jnp.sum(jnp.where(mask, values, 0))
    return total / jnp.maximum(jnp.sum(mask), 1).astype(total.dtype)


def step_mask(lengths: Array | None, num_steps: int, *, time_major: bool = False) -> Array | None:
    """``[*batch, T]`` (``[T, *batch]`` if time-major) validity mask from `lengths`, or None."""
    if lengths is None:
        return None
    return sequence_mask(lengths, num_steps, time_axis=0 if time_major else -1)


def check_labels(fn: str, arg: str, labels: Any, logits: Array) -> Array:
    """Checks integer `labels` have the shape of `logits` without its class axis."""
    if not hasattr(labels, "shape") or not hasattr(labels, "dtype"):
        labels = np.asarray(labels)
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(f"{fn}: argument '{arg}' must hold integer class ids, got dtype {labels.dtype}")
    if tuple(labels.shape) != tuple(logits.shape[:-1]):
        raise ValueError(
            f"{fn}: argument '{arg}' must have shape {tuple(logits.shape[:-1])} (the predictions' "
            f"shape without the class axis), got {tuple(labels.shape)}"
        )
    return jnp.asarray(labels)


def sequence_cross_entropy(
    logits: Array, labels: Array, lengths: Array | None = None, *, time_major: bool = False
) -> Array:
    """Mean softmax cross-entropy (nats) over the valid steps of ``logits [*batch, T, C]``.

    Example::

        logits, _ = tagger.apply(params, xs, lengths=lengths)
        loss = sequence_cross_entropy(logits, tags, lengths)      # padding ignored
    """
    labels = check_labels("sequence_cross_entropy", "labels", labels, logits)
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    t_axis = 0 if time_major else -1
    return masked_mean(nll, step_mask(lengths, nll.shape[t_axis], time_major=time_major))


def sequence_accuracy(logits: Array, labels: Array, lengths: Array | None = None, *, time_major: bool = False) -> Array:
    """Fraction of valid steps of ``logits [*batch, T, C]`` whose argmax equals `labels`."""
    labels = check_labels("sequence_accuracy", "labels", labels, logits)
    hit = (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)
    t_axis = 0 if time_major else -1
    return masked_mean(hit, step_mask(lengths, hit.shape[t_axis], time_major=time_major))
