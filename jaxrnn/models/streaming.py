"""Running a layer one time step at a time with its cells' `step`, for streaming and generation.

A causal layer (a forward `RNN`, or a `Stacked` of causal layers) can consume its input step by
step: `layer_step` advances the layer's carry by one input and returns that step's output, and
feeding a sequence through it step by step gives exactly what `apply` gives on the whole sequence.
Bidirectional and reversed layers need the future, so they cannot stream.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from jaxrnn._typing import Array, Carry, Params
from jaxrnn.layers import RNN, Bidirectional, Stacked


def is_causal(layer: Any) -> bool:
    """Whether each output of `layer` depends only on inputs up to its own step."""
    if isinstance(layer, RNN):
        return not layer.reverse
    if isinstance(layer, Stacked):
        return all(is_causal(sub) for sub in layer.layers)
    if isinstance(layer, Bidirectional):
        return False
    return hasattr(layer, "step")


def check_causal(fn: str, layer: Any) -> None:
    """Raises ValueError unless `layer` can run one step at a time (see `is_causal`)."""
    if not is_causal(layer):
        raise ValueError(
            f"{fn}: argument 'layer' must be causal (a forward RNN, a Stacked of causal layers, or a layer "
            f"with a 'step' method) to run one step at a time, got {type(layer).__name__}"
            + (" (a bidirectional or reversed layer needs the whole sequence)" if isinstance(layer, (RNN, Bidirectional, Stacked)) else "")
        )


def _one_step_scan(layer: RNN, params: Params, carry: Carry, x: Array) -> tuple[Carry, Array]:
    """`layer.apply` on a length-1 sequence: the scan body itself, for RNN options that act per step
    around the cell (zoneout's inference-time carry averaging), so streaming never re-implements them."""
    t_axis = 0 if layer.time_major else x.ndim - getattr(layer.cell, "num_feature_axes", 1)
    ys, carry = layer.apply(params, jnp.expand_dims(x, t_axis), carry=carry)
    return carry, jnp.squeeze(ys, t_axis)


def layer_step(layer: Any, params: Params, carry: Carry, x: Array) -> tuple[Carry, Array]:
    """One step of a causal layer: ``(new_carry, y)`` from input ``x [*batch, F]``.

    The carry is the layer's own (`layer.initial_carry(params, batch_shape)` to start, or the
    final carry of `layer.apply` on a prefix). Inter-layer dropout of a `Stacked` is off, as in
    `apply` without a key.

    Example::

        carry = layer.initial_carry(params, (batch,))
        step = jax.jit(functools.partial(layer_step, layer))
        for x_t in stream:                                 # x_t: [batch, F]
            carry, y_t = step(params, carry, x_t)          # == layer.apply(params, xs)[0][:, t]
    """
    if isinstance(layer, RNN) and not layer.reverse:
        if getattr(layer, "zoneout", 0.0) == 0.0:
            return layer.cell.step(params, carry, x)
        return _one_step_scan(layer, params, carry, x)
    if isinstance(layer, Stacked):
        new_carries = []
        h = x
        for i, (name, sub) in enumerate(zip(layer._names(), layer.layers)):
            sub_carry, out = layer_step(sub, params[name], carry[i], h)
            if layer.residual and i > 0:
                out = out + h
            h = out
            new_carries.append(sub_carry)
        return tuple(new_carries), h
    if not isinstance(layer, (RNN, Bidirectional)) and hasattr(layer, "step"):
        return layer.step(params, carry, x)
    check_causal("layer_step", layer)
    raise AssertionError("unreachable: check_causal raised")
