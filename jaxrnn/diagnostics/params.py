"""Parameter-gradient norms per parameter, per layer and global, and update-to-parameter ratios."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxrnn._typing import Array
from jaxrnn.diagnostics.norms import combine, scaled_sum_of_squares


class ParamGradNorms(NamedTuple):
    """The result of `param_grad_norms`. Names are parameter paths joined by ``/`` (``"layer/w_hh"``).

    Attributes:
      global_norm: ``||g||`` over all parameters (what `optax.clip_by_global_norm` compares).
      per_param: ``{path: ||g_path||}`` for every leaf.
      per_layer: ``{layer: ||g_layer||}``, a layer being a leaf's path without its last name
        (``"layer/layer_0"`` for ``"layer/layer_0/w_hh"``; ``""`` for a bare cell's params).
      update_ratio: ``{layer: ||update|| / ||param||}`` when `params` and `updates` were given, else
        empty. Around 1e-3 per step is the usual healthy range for Adam (Karpathy, CS231n notes).
      global_update_ratio: ``||update|| / ||params||`` over all parameters (``nan`` without them).
    """

    global_norm: Array
    per_param: dict[str, Array]
    per_layer: dict[str, Array]
    update_ratio: dict[str, Array]
    global_update_ratio: Array


def param_names(tree: Any) -> list[str]:
    """The ``/``-joined path of every leaf of `tree`, in leaf order (``["layer/b", "layer/w_hh", ...]``)."""
    return [jax.tree_util.keystr(path, simple=True, separator="/") for path, _ in jax.tree_util.tree_leaves_with_path(tree)]


def layer_of(name: str) -> str:
    """The layer a parameter belongs to: its path without the last name."""
    return name.rpartition("/")[0]


def _grouped_norms(tree: Any) -> tuple[dict[str, Array], dict[str, Array], Array]:
    names = param_names(tree)
    parts = [scaled_sum_of_squares(leaf) for leaf in jax.tree_util.tree_leaves(tree)]
    per_param = {n: m * jnp.sqrt(s) for n, (m, s) in zip(names, parts)}
    groups: dict[str, list[tuple[Array, Array]]] = {}
    for n, part in zip(names, parts):
        groups.setdefault(layer_of(n), []).append(part)
    per_layer = {}
    for layer, layer_parts in groups.items():
        m, s = combine(layer_parts)
        per_layer[layer] = m * jnp.sqrt(s)
    m, s = combine(parts) if parts else (jnp.zeros(()), jnp.zeros(()))
    return per_param, per_layer, m * jnp.sqrt(s)


def param_grad_norms(grads: Any, *, params: Any = None, updates: Any = None) -> ParamGradNorms:
    """Norms of a gradient pytree per parameter, per layer and in total; optionally update ratios.

    All norms scale by the largest entry first (`jaxrnn.diagnostics.safe_norm`), so they stay exact in
    float32 far below 1e-19, where ``sqrt(sum(g**2))`` underflows. Works inside `jax.jit`.

    Args:
      grads: a gradient pytree (e.g. from `jax.grad`).
      params: the parameters (same structure), for update-to-parameter ratios.
      updates: the optimizer's updates (same structure), e.g. from ``optimizer.update``.

    Example::

        grads = jax.grad(loss)(params)
        stats = param_grad_norms(grads)
        stats.global_norm, stats.per_layer["layer"], stats.per_param["layer/w_hh"]
    """
    if not jax.tree_util.tree_leaves(grads):
        raise ValueError("param_grad_norms: argument 'grads' must be a pytree with at least one array, got none")
    per_param, per_layer, global_norm = _grouped_norms(grads)
    ratios: dict[str, Array] = {}
    global_ratio = jnp.asarray(jnp.nan, global_norm.dtype)
    if (params is None) != (updates is None):
        raise ValueError("param_grad_norms: arguments 'params' and 'updates' must be given together, got one of them")
    if params is not None:
        for arg, tree in (("params", params), ("updates", updates)):
            if jax.tree_util.tree_structure(tree) != jax.tree_util.tree_structure(grads):
                raise ValueError(
                    f"param_grad_norms: argument '{arg}' must have the structure of 'grads', "
                    f"{jax.tree_util.tree_structure(grads)}; got {jax.tree_util.tree_structure(tree)}"
                )
        ratios, global_ratio = update_ratios(params, updates)
    return ParamGradNorms(global_norm, per_param, per_layer, ratios, global_ratio)


def update_ratios(params: Any, updates: Any) -> tuple[dict[str, Array], Array]:
    """``({layer: ||update_layer|| / ||param_layer||}, ||update|| / ||params||)`` for same-structured trees."""
    _, update_layers, update_norm = _grouped_norms(updates)
    _, param_layers, param_norm = _grouped_norms(params)
    return {layer: update_layers[layer] / param_layers[layer] for layer in update_layers}, update_norm / param_norm
