"""An optax wrapper that clips by global norm and records gradient diagnostics in its state, inside jit."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxrnn._typing import Array
from jaxrnn.diagnostics.params import layer_of, param_grad_norms, param_names, update_ratios


class GradStats(NamedTuple):
    """What `monitored` records about the latest gradients (all arrays, so it lives in the jitted state).

    Attributes:
      global_norm: ``||g||`` of the raw gradients, before clipping.
      layer_norms: ``{layer: ||g_layer||}`` (layers as in `param_grad_norms`).
      clipped: whether clipping by global norm fired (``global_norm > clip_norm``).
      nonfinite: whether any gradient entry is ``nan`` or ``inf``.
      nonfinite_params: ``{path: bool}``, which parameters' gradients hold non-finite entries.
      update_ratio: ``||update|| / ||params||`` of the optimizer's final update (``nan`` without params).
      layer_update_ratios: the same per layer.
      vanishing: ``global_norm < vanishing_below`` (False if no threshold was given).
      exploding: ``global_norm > exploding_above`` (False if no threshold was given).
    """

    global_norm: Array
    layer_norms: dict[str, Array]
    clipped: Array
    nonfinite: Array
    nonfinite_params: dict[str, Array]
    update_ratio: Array
    layer_update_ratios: dict[str, Array]
    vanishing: Array
    exploding: Array


class MonitoredState(NamedTuple):
    """State of `monitored`: the wrapped optimizer's state and the latest `GradStats`."""

    inner: optax.OptState
    stats: GradStats


def _check_threshold(arg: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"monitored: argument '{arg}' must be a positive float or None, got {value!r}")


def monitored(
    optimizer: optax.GradientTransformation,
    *,
    clip_norm: float | None = None,
    vanishing_below: float | None = None,
    exploding_above: float | None = None,
) -> optax.GradientTransformationExtraArgs:
    """Wraps an optax optimizer: records gradient diagnostics in the state, optionally clips first.

    Each ``update`` measures the raw gradients (global and per-layer norms, non-finite entries per
    parameter), clips them by global norm if `clip_norm` is set (as `optax.clip_by_global_norm`,
    Pascanu et al. 2013), runs `optimizer`, and measures the final update against ``params``. The
    numbers land in ``state.stats`` (a `GradStats`), so a jitted train step returns them for free.
    Gradients are never altered except by the clipping; use `optax.apply_if_finite` to skip bad steps.

    Args:
      optimizer: any `optax.GradientTransformation` (e.g. ``optax.adam(1e-3)``).
      clip_norm: clip gradients to this global norm before the optimizer (None: no clipping).
      vanishing_below: set ``stats.vanishing`` when the global gradient norm falls below this.
      exploding_above: set ``stats.exploding`` when the global gradient norm exceeds this.

    Example::

        tx = monitored(optax.adam(1e-3), clip_norm=1.0)
        opt_state = tx.init(params)

        @jax.jit
        def step(params, opt_state, batch):
            grads = jax.grad(loss)(params, batch)
            updates, opt_state = tx.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state

        params, opt_state = step(params, opt_state, batch)
        opt_state.stats.global_norm, opt_state.stats.clipped, opt_state.stats.layer_norms

    References:
      Pascanu, Mikolov & Bengio, "On the difficulty of training recurrent neural networks", ICML 2013.
    """
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(
            f"monitored: argument 'optimizer' must be an optax.GradientTransformation, got {type(optimizer).__name__}"
        )
    for arg, value in (("clip_norm", clip_norm), ("vanishing_below", vanishing_below), ("exploding_above", exploding_above)):
        _check_threshold(arg, value)
    inner_tx = optax.with_extra_args_support(optimizer)  # forwards e.g. value= to optimizers that take it

    def init(params: Any) -> MonitoredState:
        names = param_names(params)
        zero = jnp.zeros((), jnp.float32)
        false = jnp.zeros((), bool)
        layers = {layer_of(n): zero for n in names}
        stats = GradStats(
            global_norm=zero,
            layer_norms=layers,
            clipped=false,
            nonfinite=false,
            nonfinite_params={n: false for n in names},
            update_ratio=zero,
            layer_update_ratios=dict(layers),
            vanishing=false,
            exploding=false,
        )
        return MonitoredState(inner=inner_tx.init(params), stats=stats)

    def update(grads: Any, state: MonitoredState, params: Any = None, **extra_args: Any) -> tuple[Any, MonitoredState]:
        norms = param_grad_norms(grads)
        global_norm = norms.global_norm.astype(jnp.float32)
        bad = {n: ~jnp.all(jnp.isfinite(g)) for n, g in zip(param_names(grads), jax.tree_util.tree_leaves(grads))}
        clipped = jnp.zeros((), bool)
        if clip_norm is not None:
            clipped = global_norm > clip_norm
            factor = jnp.where(clipped, clip_norm / global_norm, 1.0)
            grads = jax.tree.map(lambda g: (g * factor).astype(g.dtype), grads)
        updates, inner = inner_tx.update(grads, state.inner, params, **extra_args)
        if params is None:
            nan = jnp.full((), jnp.nan, jnp.float32)
            layer_ratios, ratio = {k: nan for k in norms.per_layer}, nan
        else:
            layer_ratios, ratio = update_ratios(params, updates)
        stats = GradStats(
            global_norm=global_norm,
            layer_norms={k: v.astype(jnp.float32) for k, v in norms.per_layer.items()},
            clipped=clipped,
            nonfinite=jnp.any(jnp.stack(list(bad.values()))),
            nonfinite_params=bad,
            update_ratio=jnp.asarray(ratio, jnp.float32),
            layer_update_ratios={k: jnp.asarray(v, jnp.float32) for k, v in layer_ratios.items()},
            vanishing=jnp.asarray(False if vanishing_below is None else global_norm < vanishing_below),
            exploding=jnp.asarray(False if exploding_above is None else global_norm > exploding_above),
        )
        return updates, MonitoredState(inner=inner, stats=stats)

    return optax.GradientTransformationExtraArgs(init, update)


def grad_stats(opt_state: Any) -> GradStats:
    """The `GradStats` of the (first) `monitored` state inside `opt_state`, however deeply nested.

    Example::

        tx = optax.chain(optax.add_decayed_weights(1e-4), monitored(optax.adam(1e-3)))
        ...
        grad_stats(opt_state).global_norm
    """
    found = [
        s
        for s in jax.tree_util.tree_leaves(opt_state, is_leaf=lambda x: isinstance(x, MonitoredState))
        if isinstance(s, MonitoredState)
    ]
    if not found:
        raise ValueError("grad_stats: argument 'opt_state' holds no jaxrnn.diagnostics.monitored state")
    return found[0].stats
