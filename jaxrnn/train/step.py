"""A jitted train step from (model, loss, optax optimizer), with gradient diagnostics in its metrics."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from jaxrnn._typing import Array, Params, PRNGKey
from jaxrnn.diagnostics.transform import grad_stats, monitored
from jaxrnn.tasks import Batch
from jaxrnn.train import distributed

LossFn = Callable[[Array, Batch], Array]


class TrainState(NamedTuple):
    """Everything a training run carries from step to step (all arrays: checkpointable)."""

    step: Array
    params: Params
    opt_state: optax.OptState


class Trainer(NamedTuple):
    """The pure functions of a training run, from `make_train_step`.

    Attributes:
      init: ``params -> TrainState`` (step 0, fresh optimizer state).
      step: ``(state, batch, key=None) -> (state, metrics)``, jitted. ``key`` feeds dropout. With a
        mesh, a `jaxrnn.train.distributed.ShardedFunction` (batch split by rows, state replicated).
      evaluate: ``(params, batch) -> loss``, jitted (sharded the same way with a mesh).
      optimizer: the `monitored` optax transformation the step applies.
    """

    init: Callable[[Params], TrainState]
    step: Callable[..., tuple[TrainState, dict[str, Any]]]
    evaluate: Callable[[Params, Batch], Array]
    optimizer: optax.GradientTransformation


def make_train_step(
    model: Any,
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
    *,
    clip_norm: float | None = None,
    jit: bool = True,
    mesh: Mesh | None = None,
) -> Trainer:
    """Builds a train step for ``model.apply(params, xs, lengths=, key=)`` and ``loss_fn(predictions, batch)``.

    The optimizer is wrapped in `jaxrnn.diagnostics.monitored`, so each step clips by global norm (if
    `clip_norm`) and returns, besides the loss, the gradient diagnostics computed inside the jitted step:

    - ``loss``, ``grad_norm`` (before clipping), ``clipped``, ``update_ratio`` (``||update|| / ||params||``);
    - ``nonfinite``: the loss or any gradient is nan/inf; ``nonfinite_params``: ``{path: bool}``;
    - ``layer_grad_norms``: ``{layer: norm}``.

    Args:
      model: e.g. a `jaxrnn.models.SequenceRegressor`; anything with ``apply(params, xs, *, lengths=None, key=None) -> (predictions, _)``.
      loss_fn: ``(predictions, batch) -> scalar`` (e.g. ``task.loss``).
      optimizer: an optax optimizer (e.g. ``optax.adam(1e-3)``).
      clip_norm: clip gradients to this global norm before the optimizer.
      jit: compile `step` and `evaluate` with `jax.jit` (turn off to debug).
      mesh: train data-parallel over this `jax.sharding.Mesh` (e.g. `jaxrnn.train.data_mesh()`): `step`
        and `evaluate` split each batch's rows across the mesh's devices, keep the state replicated and
        all-reduce the gradients (see `jaxrnn.train.distributed`); the metrics are those of the global
        batch. Batches may be host arrays; their size must be a multiple of the device count.

    Example::

        trainer = make_train_step(model, task.loss, optax.adam(1e-3), clip_norm=1.0)
        state = trainer.init(model.init(jax.random.key(0), task.input_size))
        state, metrics = trainer.step(state, task.sample(jax.random.key(1), 64))
        float(metrics["loss"]), float(metrics["grad_norm"]), bool(metrics["clipped"])
    """
    if not callable(loss_fn):
        raise TypeError(f"make_train_step: argument 'loss_fn' must be callable, got {type(loss_fn).__name__}")
    if not hasattr(model, "apply"):
        raise TypeError(f"make_train_step: argument 'model' must have an 'apply' method, got {type(model).__name__}")
    tx = monitored(optimizer, clip_norm=clip_norm)

    def loss_of(params: Params, batch: Batch, key: PRNGKey | None) -> Array:
        predictions = model.apply(params, batch.xs, lengths=batch.lengths, key=key)[0]
        return loss_fn(predictions, batch)

    def init(params: Params) -> TrainState:
        return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))

    def step(state: TrainState, batch: Batch, key: PRNGKey | None = None) -> tuple[TrainState, dict[str, Any]]:
        loss, grads = jax.value_and_grad(loss_of)(state.params, batch, key)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        stats = grad_stats(opt_state)
        metrics = {
            "loss": loss,
            "grad_norm": stats.global_norm,
            "clipped": stats.clipped,
            "update_ratio": stats.update_ratio,
            "nonfinite": stats.nonfinite | ~jnp.isfinite(loss),
            "nonfinite_params": stats.nonfinite_params,
            "layer_grad_norms": stats.layer_norms,
        }
        return TrainState(step=state.step + 1, params=params, opt_state=opt_state), metrics

    def evaluate(params: Params, batch: Batch) -> Array:
        return loss_of(params, batch, None)

    if mesh is not None:
        distributed.check_mesh("make_train_step", mesh)
        step = distributed.ShardedFunction(step, mesh, jit=jit, name="Trainer.step")
        evaluate = distributed.ShardedFunction(evaluate, mesh, jit=jit, name="Trainer.evaluate")
    elif jit:
        step, evaluate = jax.jit(step), jax.jit(evaluate)
    return Trainer(init=init, step=step, evaluate=evaluate, optimizer=tx)
