"""The diagonal of a cell step's Jacobian ``d carry_t / d carry_{t-1}`` in O(n) per step, for quasi-DEER.

``diag(jacfwd(step))`` costs n JVPs and an n x n matrix per step, which is what quasi-DEER exists to
avoid. Cells whose step is ``update(carry, combine(u, h @ w_hh))`` with an elementwise `update` (unit
j of every output leaf depends on unit j of the carry and of each gate block of ``z`` only: SimpleRNN,
LSTM without projection or layer norm, GRU ``reset_after``) have the exact diagonal

    diag_i = d update_i / d carry_i  +  sum_g d update_i / d z_{g, j} * w_hh[j, g H + j]   (i in h),

one JVP of `update` per carry leaf, with the diagonals of the gate blocks of ``w_hh`` as the tangent
of ``z`` (the analytic GRU diagonal of Gonzalez et al. 2024, for any such cell). Quasi-DEER uses the
diagonal only as an approximate Jacobian: a less exact one makes it converge more slowly, never to
another answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxrnn._typing import Array, Carry, Params
from jaxrnn.cells.base import Cell
from jaxrnn.parallel.newton import Diagonal


def structured_diagonal(cell: Cell, finish: Callable, params: Params, carry: Carry) -> Diagonal | None:
    """The O(n) diagonal of `jaxrnn.RNN`'s step (``finish(*cell.recur(...))`` on ``x_t = (u, valid,
    probe, zoneout mask, recurrent mask)``) for elementwise-update cells; None for other cells
    (quasi-DEER then takes the diagonal of the dense Jacobian). `carry` has one batch dim."""
    if cell.recurrence not in ("sum", "pair") or getattr(cell, "proj_size", 0) or "w_hh" not in params:
        return None
    w_hh = params["w_hh"]
    leaves, treedef = jax.tree.flatten(carry)
    if w_hh.ndim != 2 or w_hh.shape[1] % w_hh.shape[0]:
        return None
    units = w_hh.shape[0]
    if any(leaf.ndim != 2 or leaf.shape[1] != units for leaf in leaves):
        return None
    hidden_index = cell.hidden(treedef.unflatten(list(range(len(leaves)))))
    if not isinstance(hidden_index, int):
        return None
    gates = w_hh.shape[1] // units

    def diagonal(p: Params, c: Carry, x: Any) -> Carry:
        u, ok, probe, zone_mask, recurrent_mask = x
        hh = cell.recurrent_product(p, c, recurrent_mask)
        z = cell.combine(u, hh)
        # [gates, units]: entry (g, j) = w_hh[j, g * units + j]
        block_diag = jnp.diagonal(p["w_hh"].reshape(units, gates, units), axis1=0, axis2=2)
        if recurrent_mask is not None:
            block_diag = block_diag * recurrent_mask
        dz_hidden = cell.combine(jnp.zeros_like(u), block_diag.reshape(-1).astype(hh.dtype))
        dz_none = jax.tree.map(jnp.zeros_like, z)
        c_leaves = jax.tree.leaves(c)

        def new_carry(c_: Carry, z_: Any) -> Carry:
            return finish(*cell.update(p, c_, z_), c_, ok, probe, zone_mask)[0]

        out: list[Array] = []
        for i in range(len(c_leaves)):
            dc = treedef.unflatten([jnp.ones_like(l) if j == i else jnp.zeros_like(l) for j, l in enumerate(c_leaves)])
            dz = dz_hidden if i == hidden_index else dz_none
            out.append(jax.tree.leaves(jax.jvp(new_carry, (c, z), (dc, dz))[1])[i])
        return treedef.unflatten(out)

    return diagonal


__all__ = ["structured_diagonal"]
