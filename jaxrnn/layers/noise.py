"""Regularising noise for recurrent layers: variational dropout masks and zoneout.

`jaxrnn.RNN` draws these once per call, outside its scan: dropout masks are one per sequence
(Gal & Ghahramani 2016), zoneout masks one per step and unit (Krueger et al. 2017) and are scanned
over time with the inputs.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxrnn import _checks
from jaxrnn._typing import Array, Carry, PRNGKey


def dropout_mask(key: PRNGKey, rate: float, shape: tuple[int, ...], dtype: Any) -> Array:
    """Inverted-dropout multiplier: 0 with probability `rate`, else ``1 / (1 - rate)`` (mean 1)."""
    keep = jax.random.bernoulli(key, 1.0 - rate, shape)
    return jnp.where(keep, 1.0 / (1.0 - rate), 0.0).astype(dtype)


def check_zoneout(fn: str, zoneout: Any) -> None:
    """`zoneout` must be a probability in [0, 1), or a pytree of them shaped like the carry."""
    leaves = jax.tree.leaves(zoneout)
    if not leaves:
        raise ValueError(f"{fn}: argument 'zoneout' must be a float in [0, 1) or a pytree of them, got {zoneout!r}")
    for rate in leaves:
        _checks.check_probability(fn, "zoneout", rate)


def zoneout_rates(fn: str, zoneout: Any, carry: Carry) -> Carry:
    """The zoneout probability of every carry leaf: `zoneout` itself if a float, else matched to the carry."""
    if isinstance(zoneout, (int, float)):
        return jax.tree.map(lambda _: float(zoneout), carry)
    try:
        return jax.tree.map(lambda rate, _: float(rate), zoneout, carry)
    except ValueError as err:
        raise ValueError(
            f"{fn}: argument 'zoneout' must be a float or a pytree with the carry's structure "
            f"{jax.tree_util.tree_structure(carry)}, got {zoneout!r}"
        ) from err


def zoneout_masks(key: PRNGKey, rates: Carry, carry: Carry, num_steps: int) -> Carry:
    """Per step and unit, True where the unit keeps its previous value: ``[T, *leaf.shape]`` per leaf."""
    leaves, treedef = jax.tree.flatten(carry)
    rate_leaves = treedef.flatten_up_to(rates)
    keys = jax.random.split(key, len(leaves))
    masks = [
        jax.random.bernoulli(k, rate, (num_steps, *leaf.shape)) if rate > 0.0 else None
        for k, rate, leaf in zip(keys, rate_leaves, leaves)
    ]
    return treedef.unflatten(masks)


def zoneout_update(new: Carry, old: Carry, rates: Carry, masks: Carry | None) -> Carry:
    """Zoneout (Krueger et al. 2017): with `masks`, each unit keeps its old value where the mask is True;
    without (inference), the expectation ``rate * old + (1 - rate) * new``."""
    leaves_new, treedef = jax.tree.flatten(new)
    leaves_old = treedef.flatten_up_to(old)
    rate_leaves = treedef.flatten_up_to(rates)
    mask_leaves = [None] * len(leaves_new) if masks is None else treedef.flatten_up_to(masks)
    out = []
    for n, o, rate, m in zip(leaves_new, leaves_old, rate_leaves, mask_leaves):
        if rate == 0.0:
            out.append(n)
        elif m is not None:
            out.append(jnp.where(m, o, n))
        else:
            out.append((rate * o + (1.0 - rate) * n).astype(n.dtype))
    return treedef.unflatten(out)
