"""When `jaxrnn.RNN` runs a layer's recurrence as one kernel call for all steps instead of `lax.scan`.

Two kernels, one per backend, each computing the plain recurrence and nothing else; anything a step
does beyond the cell's update (a lengths mask, zoneout, recurrent dropout, the diagnostics probe)
keeps the layer on `lax.scan`.

* CUDA GPU, `jaxrnn.kernels.persistent_lstm` (Pallas): an LSTM's forward recurrence, every program
  resident at once. By default (``persistent=None``) where it measured faster than the scan, on an
  H100 (`benchmarks/RESULTS.md`, suite gpu): up to 64 rows, with the weights resident on chip. Forward
  (16,1024,768,768) fp16 4.4 against 6.2 ms, float32 6.7 against 8.9; (64,1024,1024,1024) fp16 8.2
  against 10.5 ms; forward+backward 0.86-0.92x the scan's time. Not inside `Bidirectional`'s
  one-scan directions, which run both directions on the GPU at once where the kernel would run them
  one after the other (4-layer bi-LSTM fp16: 61 against 31 ms forward).
* CPU, `jaxrnn.kernels.cpu_recurrence` (C++ through XLA's FFI, built on first use): a float32 LSTM,
  GRU (``reset_after``, PyTorch's form) or Elman layer's forward recurrence and its backward (the
  weight and bias gradients included), threads splitting the hidden units or, given 8 rows each, the
  batch. By default where it measured faster than the scan
  (`DEFAULT_CPU_MAX_STEP_MACS`).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxrnn._typing import Array, Carry, Params
from jaxrnn.cells.base import Cell
from jaxrnn.cells.gru import GRU
from jaxrnn.cells.lstm import LSTM
from jaxrnn.cells.simple import SimpleRNN
from jaxrnn.kernels import cpu_recurrence
from jaxrnn.kernels.persistent_lstm import padded_batch, persistent_lstm_fits, weights_stay_resident

# Rows (after padding to a power of two >= 16) up to which the kernel is the default: measured to 64.
MAX_DEFAULT_ROWS = 64


def obstacles(cell: Cell, params: Params, carry: Carry, xs: Array, *, plain_steps: bool) -> list[str]:
    """Why the kernel of the default backend cannot run this layer (empty if it can). `plain_steps`:
    no lengths mask, zoneout, recurrent dropout or probe touches the steps."""
    if jax.default_backend() == "cpu":
        return cpu_obstacles(cell, params, carry, xs, plain_steps=plain_steps)
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


def cpu_obstacles(cell: Cell, params: Params, carry: Carry, xs: Array, *, plain_steps: bool) -> list[str]:
    """Why `jaxrnn.kernels.cpu_recurrence` cannot run this layer (empty if it can)."""
    found = []
    plain_lstm = type(cell) is LSTM and not (cell.peephole or cell.proj_size or cell.layer_norm)
    plain_gru = type(cell) is GRU and cell.reset_after
    if not (plain_lstm or plain_gru or type(cell) is SimpleRNN) or cell.compute_dtype is not None or not cell.projects_densely:
        found.append(
            "a plain jaxrnn.LSTM (no peepholes, projection or layer norm), jaxrnn.GRU with reset_after or jaxrnn.SimpleRNN "
            f"cell without compute_dtype, got {cell!r}"
        )
        return found
    if not plain_steps:
        found.append("steps with nothing but the cell's update (no lengths, zoneout, recurrent_dropout or probe)")
    dtypes = {str(leaf.dtype) for leaf in jax.tree.leaves((params, carry, xs))}
    if dtypes != {"float32"}:
        found.append(f"float32 parameters, carry and inputs, got {sorted(dtypes)}")
    if xs.shape[0] == 0:
        found.append("at least one step")
    if cell.hidden_size % cpu_recurrence.UNITS_PER_BLOCK:
        found.append(f"a hidden size that is a multiple of {cpu_recurrence.UNITS_PER_BLOCK}, got {cell.hidden_size}")
    if not found and (reason := cpu_recurrence.unavailable_reason()) is not None:
        found.append(f"the compiled kernel ({reason})")
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
    if jax.default_backend() == "cpu":
        if found:
            if requested:
                raise ValueError("RNN: persistent=True needs " + "; ".join(found))
            return None
        gates = params["w_hh"].shape[1] // cell.hidden_size
        if requested is None and not default_on_cpu(xs.shape[1], cell.hidden_size, gates):
            return None
        return {"device": "cpu", "threads": cpu_recurrence.default_threads(xs.shape[1], cell.hidden_size, gates)}
    if requested is None:
        # streaming W_hh from L2 every step measured no faster than the scan (float32, H=768: 10.3
        # against 9.2 ms), so the default wants it resident
        resident = weights_stay_resident(cell.hidden_size, jnp.dtype(params["w_hh"].dtype).itemsize)
        return None if found or not resident or padded_batch(xs.shape[1]) > MAX_DEFAULT_ROWS else {"device": "gpu"}
    if found:
        raise ValueError("RNN: persistent=True needs " + "; ".join(found))
    return {"device": "gpu"}


def cpu_forward(
    cell: Cell, params: Params, carry: Carry, xs: Array, *, reverse: bool, save: bool, threads: int
) -> tuple[Carry, Any]:
    """The layer's forward recurrence on `jaxrnn.kernels.cpu_recurrence`: ``(final_carry, ys)``, or with
    `save` ``(final_carry, (ys, saved))``, ``saved`` what `cpu_backward` reads."""
    kw = dict(reverse=reverse, save=save, threads=threads)
    weights = (params["w_ih"], params["w_hh"], params.get("b"))
    if isinstance(cell, LSTM):
        hs, c_last, zs, c_prevs = cpu_recurrence.lstm_forward(xs, *weights, carry.h, carry.c, **kw)
        final, h0 = carry._replace(h=hs[0] if reverse else hs[-1], c=c_last), carry.h
    else:  # the carry is h alone
        if isinstance(cell, GRU):
            hs, zs = cpu_recurrence.gru_forward(xs, *weights, params.get("b_hn"), carry, **kw)
        else:
            hs, zs = cpu_recurrence.elman_forward(xs, *weights, carry, activation=cell.activation, **kw)
        final, h0, c_prevs = (hs[0] if reverse else hs[-1]), carry, None
    return (final, (hs, (h0, hs, zs, c_prevs))) if save else (final, hs)


def cpu_backward(
    cell: Cell, params: Params, xs: Array, saved: Any, d_ys: Array, d_final: Carry, *, reverse: bool, threads: int
) -> tuple[Params, Carry, Array]:
    """``(d_params, d_initial_carry, d_xs)`` of `cpu_forward`'s layer, from its inputs `xs`, what it
    `saved` and the cotangents of the outputs and of the final carry. The kernel returns the weight
    and bias gradients with each step's ``dz``; ``d_xs = dU w_ih^T`` is left to XLA."""
    h0, hs, zs, c_prevs = saved
    kw = dict(reverse=reverse, threads=threads)
    w_hh = params["w_hh"]
    if isinstance(cell, LSTM):
        dus, dh0, dc0, dw_ih, dw_hh, db = cpu_recurrence.lstm_backward(
            xs, hs, h0, zs, c_prevs, d_ys, d_final.h, d_final.c, w_hh, **kw
        )
        d_carry, extra = d_final._replace(h=dh0, c=dc0), {}
    elif isinstance(cell, GRU):
        dus, _, d_carry, dw_ih, dw_hh, db, db_hh = cpu_recurrence.gru_backward(xs, hs, h0, zs, d_ys, d_final, w_hh, **kw)
        extra = {"b_hn": db_hh[2 * cell.hidden_size :]}
    else:
        dus, d_carry, dw_ih, dw_hh, db = cpu_recurrence.elman_backward(
            xs, hs, h0, zs, d_ys, d_final, w_hh, activation=cell.activation, **kw
        )
        extra = {}
    grads = {"w_ih": dw_ih, "w_hh": dw_hh, "b": db, **extra}
    return {k: grads[k] for k in params}, d_carry, cell.matmul(dus, params["w_ih"].T)


# Step size (rows x hidden x gate columns multiply-adds) up to which the CPU kernel is the default. On
# the 2-core AMD EPYC of benchmarks/RESULTS.md it took 0.65-0.73x the scan's forward+backward time up
# to 4M (LSTM (16,512,64,256)). Above, XLA's multi-threaded GEMMs hold their own: at (256,64,128,512),
# alone, the kernel (threads splitting the rows) took 0.87-0.93x the scan's time, but timed in turn
# with the peers its two threads' times scattered (GRU forward+backward 557-898 ms, median 768, against
# the peers' 637-782), so the scan stays the default there.
DEFAULT_CPU_MAX_STEP_MACS = 1 << 24


def default_on_cpu(batch: int, hidden: int, gates: int) -> bool:
    """Whether ``persistent=None`` runs a layer of this step size on the CPU kernel."""
    return batch * hidden * gates * hidden <= DEFAULT_CPU_MAX_STEP_MACS


__all__ = ["DEFAULT_CPU_MAX_STEP_MACS", "MAX_DEFAULT_ROWS", "cpu_backward", "cpu_forward", "cpu_obstacles", "default_on_cpu", "obstacles", "persistent_options"]
