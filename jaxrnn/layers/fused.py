"""The recurrence with a custom VJP: weight gradients as single GEMMs over all time steps.

Autodiff of ``lax.scan`` accumulates ``dW_hh += h_{t-1}^T dhh_t`` (and ``dW_ih``) inside the backward
loop: one small GEMM and a read-modify-write of the whole weight gradient per step. Here the backward
loop carries only ``dh`` and emits ``dhh_t``; after it, ``dW_hh = H_prev^T dHH`` is one GEMM over
``T * B`` rows and the input projection is differentiated once over all steps (``dW_ih = X^T dU``,
``dX = dU W_ih^T``; for an LSTM or Elman cell (a ``"sum"`` recurrence) ``[dW_ih; dW_hh] = [X, H_prev]^T dZ`` is a single GEMM).
Each ``dz_t`` is written over the forward's ``z_t`` once step t has read it, so a backward loop that
is not unrolled allocates no stack of its own. The pointwise rest of a step (gates, zoneout,
the diagnostics probe, the lengths mask) is differentiated by ``jax.vjp`` inside the loop, so every
option of `jaxrnn.RNN` works unchanged. This is the "weight gradients after the backward scan" layout
of cuDNN's RNN backward (Appleyard, Kocisky & Blunsom 2016, arXiv:1604.01946).

Needs a cell with a `recurrence` kind (``"sum"`` or ``"pair"``): ``recur = update(combine(u, h @ w_hh))``.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from jaxrnn._typing import Array, Carry, Params
from jaxrnn.cells.base import Cell, masked, update_params
from jaxrnn.layers import stacking
from jaxrnn.kernels.persistent_lstm import persistent_lstm_with_status
from jaxrnn.layers.feature_major import feature_major_scan
from jaxrnn.layers.persistent import cpu_backward, cpu_forward

# finish(new_carry, y, prev_carry, valid_t, probe_t, zoneout_mask_t) -> (new_carry, y)
StepFinisher = Callable[[Carry, Array, Carry, Any, Any, Any], tuple[Carry, Array]]


def _add(a: Any, b: Any) -> Any:
    return jax.tree.map(jnp.add, a, b)


def fused_scan(
    cell: Cell,
    finish: StepFinisher,
    params: Params,
    carry: Carry,
    xs: Array,
    probe: Array | None,
    valid: Array | None,
    recurrent_mask: Array | None,
    zone_masks: Any,
    *,
    reverse: bool,
    unroll: int | bool,
    hoist: bool,
    inference_unroll: int | bool | None = None,
    feature_major: bool = False,
    persistent: dict[str, Any] | None = None,
) -> tuple[Carry, Array]:
    """``lax.scan`` of `cell` over time-major `xs` ``[T, B, F]``; returns ``(final_carry, ys)``.

    Same values as scanning ``finish(*cell.recur(params, c, cell.project(params, x_t)), ...)``; the
    custom VJP only changes how the gradients are computed. `hoist` runs the input projection for all
    steps before the loop (one GEMM) instead of inside it. `unroll` is the loops' unroll factor when
    gradients are taken, `inference_unroll` (default: `unroll`) when none is: the custom VJP's primal
    runs only then, so each case gets the loop that is fastest for it. `feature_major` runs that
    primal with the batch on the last axis (`jaxrnn.layers.feature_major`; needs
    `supports_feature_major`). `persistent`: run the recurrence as one kernel call for all steps
    (`jaxrnn.layers.persistent`; steps with nothing but the cell's update): ``{"device": "gpu", ...}``
    the persistent Pallas LSTM kernel for the forward (inference and training) with these options,
    falling back to the scan inside jit if it reports a stall; ``{"device": "cpu", "threads": n}`` the
    C++ kernel for the forward and the backward loop of an LSTM, GRU or Elman layer.
    """
    persistent = None if persistent is None else dict(persistent)
    device = None if persistent is None else persistent.pop("device")
    inference_unroll = unroll if inference_unroll is None else inference_unroll
    kind = cell.recurrence
    # u + hh as ONE GEMM of [x_t, h_{t-1}] by [w_ih; w_hh] (what Haiku's LSTM does): on XLA:CPU one
    # kernel per step instead of two plus an add, the forward loop 1.3-1.6x faster at small steps.
    one_gemm = not hoist and kind == "sum" and cell.projects_densely

    def preactivation(params, w_stacked, c, x_or_u, recurrent_mask):
        if one_gemm:
            z = cell.matmul(jnp.concatenate([x_or_u, masked(cell.hidden(c), recurrent_mask)], axis=-1), w_stacked)
            return z + params["b"] if "b" in params else z
        u = x_or_u if hoist else cell.project(params, x_or_u)
        return cell.combine(u, cell.recurrent_product(params, c, recurrent_mask))

    def forward(params, carry, xs, probe, valid, recurrent_mask, zone_masks, save, unroll):
        inputs = cell.project(params, xs) if hoist else xs
        w_stacked = jnp.concatenate([params["w_ih"], params["w_hh"]], axis=0) if one_gemm else None

        def body(c, step_inputs):
            x_or_u, ok, p, zm = step_inputs
            z = preactivation(params, w_stacked, c, x_or_u, recurrent_mask)
            new_c, y = finish(*cell.update(params, c, z), c, ok, p, zm)
            return new_c, ((y, c, z) if save else y)

        return stacking.scan(body, carry, (inputs, valid, probe, zone_masks), reverse=reverse, unroll=unroll)

    def persistent_forward(params, carry, xs, save, unroll):
        """`forward` as one kernel launch; the scan (compiled, run only on a stall) as the fallback."""
        us = cell.project(params, xs)
        flip = (lambda a: jnp.flip(a, 0)) if reverse else (lambda a: a)
        outs, stalled = persistent_lstm_with_status(flip(us), params["w_hh"], carry.h, carry.c, save_residuals=save, **persistent)
        hs, c_last = outs[:2]
        final = carry._replace(h=hs[-1], c=c_last)
        if save:  # the carries each step started from, and its pre-activations, in input order
            zs, cs = outs[2:]
            prevs = carry._replace(
                h=jnp.concatenate([carry.h[None], hs[:-1]]), c=jnp.concatenate([carry.c[None], cs[:-1]])
            )
            result = (final, (flip(hs), jax.tree.map(flip, prevs), flip(zs)))
        else:
            result = (final, flip(hs))
        return jax.lax.cond(
            stalled,
            lambda: forward(params, carry, xs, None, None, None, None, save=save, unroll=unroll),
            lambda: result,
        )

    @jax.custom_vjp
    def run(params, carry, xs, probe, valid, recurrent_mask, zone_masks):
        if device == "cpu":
            return cpu_forward(cell, params, carry, xs, reverse=reverse, save=False, **persistent)
        if persistent is not None:
            return persistent_forward(params, carry, xs, save=False, unroll=inference_unroll)
        if feature_major:
            return feature_major_scan(
                cell, finish, params, carry, xs, probe, valid, recurrent_mask, zone_masks,
                reverse=reverse, unroll=inference_unroll,
            )
        return forward(params, carry, xs, probe, valid, recurrent_mask, zone_masks, save=False, unroll=inference_unroll)

    def run_fwd(params, carry, xs, probe, valid, recurrent_mask, zone_masks):
        if device == "cpu":  # what the kernel's backward reads, in place of the carries and pre-activations
            final, (ys, prevs) = cpu_forward(cell, params, carry, xs, reverse=reverse, save=True, **persistent)
            zs = None
        elif persistent is not None:
            final, (ys, prevs, zs) = persistent_forward(params, carry, xs, save=True, unroll=unroll)
        else:
            final, (ys, prevs, zs) = forward(params, carry, xs, probe, valid, recurrent_mask, zone_masks, save=True, unroll=unroll)
        return (final, ys), (params, xs, probe, valid, recurrent_mask, zone_masks, prevs, zs)

    def run_bwd(residuals, cotangents):
        params, xs, probe, valid, recurrent_mask, zone_masks, prevs, zs = residuals
        d_final, d_ys = cotangents
        if device == "cpu":
            d_params, d_carry, d_xs = cpu_backward(cell, params, xs, prevs, d_ys, d_final, reverse=reverse, **persistent)
            return d_params, d_carry, d_xs, None, None, None, None
        rest = update_params(params)
        w_hh_t = params["w_hh"].T

        def step_back(dc, d_rest, c_prev, z, dy, ok, p, zm):
            def pointwise(rest, c_prev, z, p):
                return finish(*cell.update(rest, c_prev, z), c_prev, ok, p, zm)

            _, vjp = jax.vjp(pointwise, rest, c_prev, z, p)
            d_rest_t, dc_prev, dz, dp = vjp((dc, dy))
            dhh = dz if kind == "sum" else dz[1]
            dh = masked(cell.matmul(dhh, w_hh_t), recurrent_mask)
            dc_prev = cell.with_hidden(dc_prev, cell.hidden(dc_prev) + dh)
            return dc_prev, _add(d_rest, d_rest_t), dz, dp

        # dz_t overwrites z_t once step t has read it: the loop stacks into the buffer the forward pass
        # filled, not a fresh zero-filled one of the same size (allocating and zeroing that was ~5% of
        # forward+backward on XLA:CPU at (16,512,64,256)). bfloat16 crosses it as float32 on CPU.
        # Only in a loop that is not unrolled: unrolled, step t+1 reads the buffer that step t has just
        # updated at another index, and XLA (CPU and GPU) then copies the whole buffer at every step
        # (O(T^2): on an H100 LSTM (64,1024,1024,1024) forward+backward took 831 ms unrolled 8 against
        # 43 ms not unrolled). There z_t comes in as a scanned input and dz_t goes out as a stacked output.
        in_place = not unroll if isinstance(unroll, bool) else unroll == 1
        z_dtypes = jax.tree.map(lambda a: a.dtype, zs)

        def body(acc, step_inputs):
            dc, d_rest, zbuf = acc
            t, z, c_prev, dy, ok, p, zm = step_inputs
            if in_place:
                z = stacking.from_loop(jax.tree.map(lambda a: jax.lax.dynamic_index_in_dim(a, t, keepdims=False), zbuf), z_dtypes)
            dc_prev, d_rest, dz, dp = step_back(dc, d_rest, c_prev, z, dy, ok, p, zm)
            if in_place:
                zbuf = jax.tree.map(lambda a, d: jax.lax.dynamic_update_index_in_dim(a, d, t, 0), zbuf, stacking.for_loop(dz))
                return (dc_prev, d_rest, zbuf), (dp, None)
            return (dc_prev, d_rest, None), (dp, dz)

        steps = jnp.arange(jax.tree.leaves(zs)[0].shape[0])
        scanned = (steps, None if in_place else zs, prevs, d_ys, valid, probe, zone_masks)
        init = (d_final, jax.tree.map(jnp.zeros_like, rest), stacking.for_loop(zs) if in_place else None)
        (d_carry, d_rest, dzs), (d_probe, stacked_dzs) = stacking.scan(body, init, scanned, reverse=not reverse, unroll=unroll)
        dzs = stacking.from_loop(dzs, z_dtypes) if in_place else stacked_dzs
        return _project_back(params, xs, prevs, recurrent_mask, dzs, d_carry, d_rest, d_probe)

    def _project_back(params, xs, prevs, recurrent_mask, dzs, d_carry, d_rest, d_probe):
        """The gradients that are GEMMs over all steps at once, from each step's ``dz``."""
        dus, dhhs = (dzs, dzs) if kind == "sum" else dzs
        h_prev = masked(cell.hidden(prevs), recurrent_mask)
        rows = h_prev.shape[0] * h_prev.shape[1]
        if cell.projects_densely:
            d_params = _dense_kernel_gradients(cell, params, xs, h_prev, dus, dhhs)
            d_xs = cell.matmul(dus, params["w_ih"].T).astype(xs.dtype)
        else:
            d_w_hh = (h_prev.reshape(rows, -1).T @ dhhs.reshape(rows, -1)).astype(params["w_hh"].dtype)
            _, project_vjp = jax.vjp(cell.project, params, xs)
            d_params, d_xs = project_vjp(dus)
            d_params = {**d_params, "w_hh": d_params["w_hh"] + d_w_hh}
        d_params = {k: v + d_rest[k] if k in d_rest else v for k, v in d_params.items()}
        return d_params, d_carry, d_xs, d_probe, None, None, None

    run.defvjp(run_fwd, run_bwd)
    return run(params, carry, xs, probe, valid, recurrent_mask, zone_masks)


def _dense_kernel_gradients(cell: Cell, params: Params, xs: Array, h_prev: Array, dus: Array, dhhs: Array) -> Params:
    """Gradients w.r.t. ``w_ih``, ``w_hh`` and ``b`` of a cell whose `project` is ``xs @ w_ih + b``,
    written out instead of differentiating `project`: for a ``"sum"`` recurrence ``dU == dHH``, so
    ``[dW_ih; dW_hh] = [X, H_prev]^T dZ`` is ONE GEMM over all ``T * B`` rows (the stacked kernel of
    the forward's one-GEMM step), and no operand is transposed into a new buffer first. Measured with
    the in-place ``dz`` stacking of `fused_scan`: forward+backward 3-17% faster on XLA:CPU."""
    rows = h_prev.shape[0] * h_prev.shape[1]
    x2, h2, du2 = xs.reshape(rows, -1), h_prev.reshape(rows, -1), dus.reshape(rows, -1)
    if cell.recurrence == "sum":
        d_w = cell.matmul(jnp.concatenate([x2, h2.astype(x2.dtype)], axis=-1).T, du2)
        d_w_ih, d_w_hh = d_w[: x2.shape[1]], d_w[x2.shape[1] :]
    else:
        d_w_ih, d_w_hh = cell.matmul(x2.T, du2), cell.matmul(h2.T, dhhs.reshape(rows, -1))
    grads = {k: jnp.zeros_like(v) for k, v in params.items()}  # what the pointwise rest reads comes later
    grads["w_ih"] = d_w_ih.astype(params["w_ih"].dtype)
    grads["w_hh"] = d_w_hh.astype(params["w_hh"].dtype)
    if "b" in params:
        grads["b"] = du2.sum(axis=0).astype(params["b"].dtype)
    return grads


def supports_fused(cell: Cell) -> bool:
    """Whether `cell` has the ``update(combine(u, h @ w_hh))`` split the fused backward needs."""
    return cell.recurrence in ("sum", "pair")


__all__ = ["fused_scan", "supports_fused"]
