"""Pooling a sequence of outputs into one vector per sequence: last state, masked mean, masked max.

All three respect ``lengths`` (right-padded batches): padding never enters the pooled value, and a
sequence of length 0 pools to zeros (its initial hidden state for ``"last"`` on known layers).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from jaxrnn._typing import Array, Carry
from jaxrnn.layers import RNN, Bidirectional, Stacked
from jaxrnn.layers.bidirectional import MERGES
from jaxrnn.masking import sequence_mask

POOLS = ("last", "mean", "max")


def final_hidden(layer: Any, carry: Carry) -> Array | None:
    """The hidden state a layer ends on, read from its final carry; None where that is unknown.

    For `RNN` this is ``cell.hidden(carry)`` (its state after each sequence's last valid step; for a
    reversed RNN, after reading back to step 0). For `Bidirectional` it merges the forward state
    after the last valid step with the backward state after step 0 (what PyTorch users build from
    ``h_n[-2:]``), which no single output position holds. `Stacked` defers to its top layer unless
    ``residual`` adds the input to the outputs. Any other layer may provide ``final_hidden(carry)``.
    """
    if isinstance(layer, RNN):
        h = layer.cell.hidden(carry)
        return h if h.shape[-1] == layer.output_size else None
    if isinstance(layer, Bidirectional):
        h_f, h_b = final_hidden(layer.forward, carry[0]), final_hidden(layer.backward, carry[1])
        return None if h_f is None or h_b is None else MERGES[layer.merge](h_f, h_b)
    if isinstance(layer, Stacked):
        if layer.residual and len(layer.layers) > 1:
            return None
        return final_hidden(layer.layers[-1], carry[-1])
    if hasattr(layer, "final_hidden"):
        return layer.final_hidden(carry)
    return None


def last_valid(ys: Array, lengths: Array | None) -> Array:
    """``ys [*batch, T, H]`` at each sequence's last valid step (index ``max(length - 1, 0)``)."""
    if lengths is None:
        return ys[..., -1, :]
    idx = jnp.maximum(jnp.asarray(lengths) - 1, 0)[..., None, None]
    return jnp.take_along_axis(ys, idx, axis=-2)[..., 0, :]


def masked_mean(ys: Array, lengths: Array | None) -> Array:
    """Mean of ``ys [*batch, T, H]`` over each sequence's valid steps (zeros for length 0)."""
    if lengths is None:
        return jnp.mean(ys, axis=-2)
    mask = sequence_mask(lengths, ys.shape[-2])[..., None]
    total = jnp.sum(jnp.where(mask, ys, 0), axis=-2)
    return total / jnp.maximum(jnp.asarray(lengths), 1)[..., None].astype(ys.dtype)


def masked_max(ys: Array, lengths: Array | None) -> Array:
    """Elementwise max of ``ys [*batch, T, H]`` over each sequence's valid steps (zeros for length 0)."""
    if lengths is None:
        return jnp.max(ys, axis=-2)
    mask = sequence_mask(lengths, ys.shape[-2])[..., None]
    top = jnp.max(jnp.where(mask, ys, -jnp.inf), axis=-2)
    return jnp.where(jnp.asarray(lengths)[..., None] > 0, top, 0).astype(ys.dtype)


def pool(
    ys: Array, lengths: Array | None, how: str, *, layer: Any = None, carry: Carry = None, time_major: bool = False
) -> Array:
    """Pools outputs ``[*batch, T, H]`` (``[T, *batch, H]`` if `time_major`) to ``[*batch, H]``.

    Args:
      ys: the layer's outputs.
      lengths: optional ``[*batch]`` lengths of right-padded sequences.
      how: ``"last"`` (the final hidden state: read from `carry` via `final_hidden` when `layer` is
        known, else the output at the last valid step), ``"mean"`` or ``"max"`` (over valid steps).
      layer, carry: the layer that produced `ys` and its final carry, used by ``"last"``.
      time_major: `ys` has time first.

    Example::

        ys, carry = layer.apply(params, xs, lengths=lengths)
        h = pool(ys, lengths, "max")                          # [*batch, H]
    """
    if time_major:
        ys = jnp.moveaxis(ys, 0, -2)
    if how == "last":
        h = None if layer is None or carry is None else final_hidden(layer, carry)
        return last_valid(ys, lengths) if h is None else h
    if how == "mean":
        return masked_mean(ys, lengths)
    if how == "max":
        return masked_max(ys, lengths)
    raise ValueError(f"pool: argument 'how' must be one of {list(POOLS)}, got {how!r}")
