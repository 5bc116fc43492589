"""The inference loop with the batch on the last axis: each step's GEMM as ``W^T [G·H, K] @ [x_t; h]^T [K, B]``.

`jaxrnn.layers.fused` runs a step as ``[x_t, h] [B, K] @ W [K, G·H]`` (batch-major, the layout of
every carry and output in jaxrnn). XLA:CPU's step kernel (YNNPACK) runs the same product faster
written the other way round, with ``G·H`` rows and the batch as the columns, when the batch is small
and the gates wide: forward 0.63-0.97x the batch-major time at 8-32 rows with gates at least 512
wide (``python -m benchmarks.ab --only feature-major``), also with the process pinned to one core, so
it is the kernel, not its threading; slower for fewer or more rows. A transposed product alone,
``(W^T @ hx^T)^T``, XLA turns back into the batch-major form, so only a loop whose carry and gates
are feature-major gets it. That costs one transpose of the inputs and of the outputs around the loop.

Only the forward pass that no gradient goes through (the custom VJP's primal) runs here: with the
backward loop in the same layout, or with the saved values written back batch-major, forward+backward
gained 1.6-3.3% (LSTM at (32,128,32,128) and (16,512,64,256)), inside the noise of this machine.
`jaxrnn.layers.tuning.default_feature_major` says where it is faster; the cell's pointwise
`update` and the step's `finish` run unchanged under ``jax.vmap`` over the last axis.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxrnn._typing import Array, Carry, Params
from jaxrnn.cells.base import Cell, masked, update_params
from jaxrnn.layers import stacking


def _batch_last(tree: Any) -> Any:
    return jax.tree.map(lambda a: jnp.moveaxis(a, 0, -1), tree)


def _batch_first(tree: Any) -> Any:
    return jax.tree.map(lambda a: jnp.moveaxis(a, -1, 0), tree)


def supports_feature_major(cell: Cell, hoist: bool) -> bool:
    """Whether `feature_major_scan` can run `cell`: a dense input projection inside the loop and a
    ``"sum"`` (one GEMM of ``[x_t, h]``) or ``"pair"`` (``x_t`` and ``h`` apart) recurrence."""
    return not hoist and cell.projects_densely and cell.recurrence in ("sum", "pair") and cell.num_feature_axes == 1


def feature_major_scan(
    cell: Cell,
    finish: Any,
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
) -> tuple[Carry, Array]:
    """Same values as the batch-major loop of `jaxrnn.layers.fused.fused_scan` (time-major `xs`
    ``[T, B, F]``, carry ``[B, ...]``; returns ``(final_carry, ys [T, B, H])``), computed with
    every per-step array ``[features, B]``.

    Example (what `RNN` does for a forward pass with no gradient where the tuning says so)::

        final, ys = feature_major_scan(cell, finish, params, carry, xs, None, None, None, None,
                                       reverse=False, unroll=1)
    """
    batch = xs.shape[1]
    w_ih_t, w_hh_t = params["w_ih"].T, params["w_hh"].T  # transposed once, outside the loop
    bias = params["b"][:, None] if "b" in params else None
    w_t = jnp.concatenate([w_ih_t, w_hh_t], axis=1) if cell.recurrence == "sum" else None
    # What the pointwise part reads gets the batch last too, parameters broadcast along it: under
    # vmap an operand without the batch axis (a [H] bias next to [H, B] gates) makes JAX move every
    # batch axis to the front, i.e. transposes in the loop.
    rest = jax.tree.map(lambda v: jnp.broadcast_to(v[..., None], (*v.shape, batch)), update_params(params))
    rec_mask_t, probe_t, zone_masks_t = (
        None if a is None else jax.tree.map(lambda m, lead=lead: jnp.moveaxis(m, lead, -1), a)
        for a, lead in ((recurrent_mask, 0), (probe, 1), (zone_masks, 1))
    )

    def pointwise(rest, c, z, p, zm):  # one example: the lengths mask is applied outside, batched
        return finish(*cell.update(rest, c, z), c, None, p, zm)

    pointwise_t = jax.vmap(pointwise, in_axes=-1, out_axes=-1)

    def body(c, step_inputs):
        x_t, ok, p, zm = step_inputs  # x_t: [F, B]
        h = masked(cell.hidden(c), rec_mask_t)
        if w_t is not None:  # [w_ih; w_hh]^T @ [x_t; h]: one GEMM, as the batch-major loop runs it
            z = cell.matmul(w_t, jnp.concatenate([x_t, h], axis=0))
            z = z if bias is None else z + bias
        else:
            u = cell.matmul(w_ih_t, x_t)
            z = (u if bias is None else u + bias, cell.matmul(w_hh_t, h))
        new_c, y = pointwise_t(rest, c, z, p, zm)
        if ok is not None:  # `finish` masks last (rnn._finish_step); here with the batch last
            new_c = jax.tree.map(lambda n, o: jnp.where(ok, n, o), new_c, c)
        return new_c, y

    xs_t = jnp.swapaxes(xs, 1, 2)  # [T, F, B]
    final, ys = stacking.scan(body, _batch_last(carry), (xs_t, valid, probe_t, zone_masks_t), reverse=reverse, unroll=unroll)
    return _batch_first(final), jnp.swapaxes(ys, 1, 2)


__all__ = ["feature_major_scan", "supports_feature_major"]
