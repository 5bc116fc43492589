"""When `jaxrnn.RNN` runs an LSTM layer as the persistent Pallas kernel (`jaxrnn.kernels.persistent_lstm`).

The kernel computes the plain LSTM recurrence and nothing else, on a CUDA GPU, with every program
resident at once; anything a step does beyond the cell's update (a lengths mask, zoneout, recurrent
dropout, the diagnostics probe) keeps the layer on `lax.scan`. By default (``persistent=None``) it runs
where it measured faster than the scan, on an H100 (`benchmarks/RESULTS.md`, suite gpu): up to 64
rows, with the weights resident on chip. Forward (16,1024,768,768) fp16 4.4 against 6.2 ms, float32
6.7 against 8.9; (64,1024,1024,1024) fp16 8.2 against 10.5 ms; forward+backward 0.86-0.92x the scan's
time. Not inside `Bidirectional`'s one-scan directions, which run both directions on the GPU at once
where the kernel would run them one after the other (4-layer bi-LSTM fp16: 61 against 31 ms forward).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxrnn._typing import Array, Carry, Params
from jaxrnn.cells.base import Cell
from jaxrnn.cells.lstm import LSTM
from jaxrnn.kernels.persistent_lstm import padded_batch, persistent_lstm_fits, weights_stay_resident

# Rows (after padding to a power of two >= 16) up to which the kernel is the default: measured to 64.
MAX_DEFAULT_ROWS = 64


def obstacles(cell: Cell, params: Params, carry: Carry, xs: Array, *, plain_steps: bool) -> list[str]:
    """Why the kernel cannot run this layer (empty if it can). `plain_steps`: no lengths mask, zoneout,
    recurrent dropout or probe touches the steps."""
    found = []
    if jax.default_backend() != "gpu":
        found.append(f"a CUDA GPU (the default backend is {jax.default_backend()!r})")
    if type(cell) is not LSTM or cell.peephole or cell.proj_size or cell.layer_norm or cell.compute_dtype is not None:
        found.append(f"a plain jaxrnn.LSTM cell (no peepholes, projection, layer norm or compute_dtype), got {cell!r}")
        return found
    if not plain_steps:
        found.append("steps with nothing but the cell's update (no lengths, zoneout, recurrent_dropout or probe)")
    dtype = params["w_hh"].dtype
    if any(leaf.dtype != dtype for leaf in jax.tree.leaves(carry)):
        found.append(f"a carry in the parameters' dtype {dtype}, got {[str(c.dtype) for c in jax.tree.leaves(carry)]}")
    steps, batch = xs.shape[:2]
    if steps == 0:
        found.append("at least one step")
    if not persistent_lstm_fits(batch, cell.hidden_size):
        found.append(
            f"a hidden size that is a multiple of 16 with at most one 16-unit block per multiprocessor, got {cell.hidden_size}"
        )
    return found


def persistent_options(
    requested: bool | None, cell: Cell, params: Params, carry: Carry, xs: Array, *, plain_steps: bool
) -> dict[str, Any] | None:
    """The kernel options `jaxrnn.layers.fused.fused_scan` runs the layer with, or None for `lax.scan`.

    `requested` is `RNN`'s ``persistent``: False never, None where it measured faster (see the module
    docstring), True always, raising a ValueError that names what is missing when it cannot."""
    if requested is False:
        return None
    found = obstacles(cell, params, carry, xs, plain_steps=plain_steps)
    if requested is None:
        # streaming W_hh from L2 every step measured no faster than the scan (float32, H=768: 10.3
        # against 9.2 ms), so the default wants it resident
        resident = weights_stay_resident(cell.hidden_size, jnp.dtype(params["w_hh"].dtype).itemsize)
        return None if found or not resident or padded_batch(xs.shape[1]) > MAX_DEFAULT_ROWS else {}
    if found:
        raise ValueError("RNN: persistent=True needs " + "; ".join(found))
    return {}


__all__ = ["MAX_DEFAULT_ROWS", "obstacles", "persistent_options"]
