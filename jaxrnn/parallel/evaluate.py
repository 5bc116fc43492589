"""What `jaxrnn.RNN` runs for ``method="parallel" | "deer" | "quasi-deer"``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp

from jaxrnn._typing import Array, Carry, Params
from jaxrnn.parallel.diagonal import structured_diagonal
from jaxrnn.parallel.linear import linear_scan
from jaxrnn.parallel.newton import NewtonInfo, newton_scan

if TYPE_CHECKING:
    from jaxrnn.layers.rnn import RNN

METHODS = ("sequential", "parallel", "deer", "quasi-deer")


def _flip(tree: Any) -> Any:
    return jax.tree.map(lambda a: jnp.flip(a, axis=0), tree)


def evaluate(
    layer: RNN, params: Params, finish: Callable, recurrent_mask: Array | None, carry: Carry, scanned: tuple
) -> tuple[Carry, Array, NewtonInfo]:
    """``(final_carry, ys, info)`` of `layer` over time-major ``(xs, valid, probe, zoneout masks)``
    ``[T, B, ...]`` from `carry` ``[B, ...]``, with the same semantics as its sequential scan (`finish`
    is the step finisher that scan uses: zoneout, probe, lengths mask)."""
    xs, valid, probe, zone_masks = scanned
    cell = layer.cell
    us = cell.project(params, xs)  # the time-parallel part, for all steps at once
    if layer.reverse:  # a reverse scan is a forward one over the time-flipped steps
        us, valid, probe, zone_masks = _flip((us, valid, probe, zone_masks))
    if layer.method == "parallel":
        final, ys = linear_scan(cell, params, carry, us, valid, probe)
        info = NewtonInfo.exact()
    else:
        if recurrent_mask is not None:  # one mask per sequence, the same at every step
            recurrent_mask = jnp.broadcast_to(recurrent_mask, (us.shape[0], *recurrent_mask.shape))

        def step(p: Params, c: Carry, x: Any) -> tuple[Carry, Array]:
            u, ok, pr, zm, rm = x
            kw = {} if rm is None else {"recurrent_mask": rm}
            return finish(*cell.recur(p, c, u, **kw), c, ok, pr, zm)

        quasi = layer.method == "quasi-deer"
        carries, ys, info = newton_scan(
            step,
            params,
            carry,
            (us, valid, probe, zone_masks, recurrent_mask),
            quasi=quasi,
            tol=layer.tol,
            max_iter=layer.max_iter,
            fallback=layer.fallback,
            diagonal=structured_diagonal(cell, finish, params, carry) if quasi else None,
            unroll=layer.scan_unroll(params, us.shape[1]),
        )
        final = jax.tree.map(lambda c: c[-1], carries)
    if layer.reverse:
        ys = _flip(ys)
    return final, ys, info
