"""`fit`: a training loop with a progress bar, periodic evaluation, gradient diagnostics, checkpoints
that resume exactly, and a clear stop on non-finite losses or gradients."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Callable, NamedTuple

import jax
import numpy as np
import optax
from jax.sharding import Mesh

from jaxrnn import _checks
from jaxrnn._typing import Params
from jaxrnn.diagnostics.temporal import DEEP_SCALE, temporal_grad_profile
from jaxrnn.tasks import Batch
from jaxrnn.train import distributed
from jaxrnn.train.checkpoint import latest_checkpoint, load_checkpoint, restore, save_checkpoint
from jaxrnn.train.step import LossFn, Trainer, TrainState, make_train_step

DataFn = Callable[[int], Batch]

_SCALARS = ("loss", "grad_norm", "clipped", "update_ratio")


class FitResult(NamedTuple):
    """What `fit` returns.

    Attributes:
      params: the trained parameters.
      state: the final `TrainState` (step, params, optimizer state with the latest `GradStats`).
      history: lists per metric: ``step``, ``loss``, ``grad_norm``, ``clipped``, ``update_ratio``,
        ``layer_grad_norms`` (``{layer: [...]}``), ``eval_step``, ``eval_loss``, ``profile_step`` and
        ``profile`` (``log10 ||dL/dh_t||`` per probed layer: ``[num_profiles][layers][T]``).
    """

    params: Params
    state: TrainState
    history: dict[str, Any]


class NonFiniteError(FloatingPointError):
    """Training produced a non-finite loss or gradient; `fit` stopped without saving the bad state.

    Attributes:
      step: the 1-based step whose loss or gradients were non-finite.
      loss: that step's loss.
      params: names of the parameters whose gradients held nan/inf entries.
      checkpoint: the last good checkpoint on disk (or None).
      state: the last good `TrainState` (before the failing step), to inspect or restart from.
    """

    def __init__(self, step: int, loss: float, params: list[str], checkpoint: Path | None, state: TrainState):
        self.step, self.loss, self.params, self.checkpoint, self.state = step, loss, params, checkpoint, state
        where = ", ".join(params) if params else "none (the loss itself is non-finite)"
        kept = f"the last good checkpoint is {checkpoint}" if checkpoint else "no checkpoint was written"
        super().__init__(
            f"fit: non-finite loss or gradient at step {step} (loss = {loss}); non-finite gradients in: {where}. "
            f"Training stopped without saving this step; {kept}. Lower the learning rate or set clip_norm."
        )


def _new_history() -> dict[str, Any]:
    return {
        "step": [], **{k: [] for k in _SCALARS}, "layer_grad_norms": {},
        "eval_step": [], "eval_loss": [], "profile_step": [], "profile": [],
    }


def _history_to_arrays(history: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in history.items():
        out[k] = {n: np.asarray(x, np.float32) for n, x in v.items()} if isinstance(v, dict) else np.asarray(v)
    return out


def _history_from_arrays(raw: dict[str, Any]) -> dict[str, Any]:
    history = _new_history()
    for k, v in raw.items():
        history[k] = {n: np.asarray(x).tolist() for n, x in v.items()} if isinstance(v, dict) else np.asarray(v).tolist()
    return history


def _fingerprint(state: TrainState) -> str:
    shapes = jax.tree.map(lambda x: (tuple(np.shape(x)), str(getattr(x, "dtype", type(x).__name__))), state)
    return str(jax.tree_util.tree_structure(state)) + str(jax.tree_util.tree_leaves(shapes))


def _check_every(arg: str, value: Any) -> None:
    if value is not None:
        _checks.check_positive_int("fit", arg, value)


def fit(
    model: Any,
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
    train_data: DataFn,
    *,
    steps: int,
    params: Params | None = None,
    seed: int = 0,
    clip_norm: float | None = None,
    eval_data: DataFn | None = None,
    eval_every: int | None = None,
    eval_batches: int = 4,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int | None = 500,
    keep: int = 3,
    profile_batch: Batch | None = None,
    profile_every: int | None = None,
    progress: bool = True,
    desc: str | None = None,
    callback: Callable[[int, dict[str, Any]], None] | None = None,
    mesh: Mesh | None = None,
) -> FitResult:
    """Trains `model` for `steps` steps; resumes from `checkpoint_dir` if it holds a checkpoint.

    Batch ``k`` is ``train_data(k)`` and the dropout key of step ``k`` is ``fold_in(key(seed), k)``:
    both pure functions of the step number, so a run resumed from a checkpoint repeats exactly what an
    uninterrupted run computes (same parameters to the last bit on the same machine).

    Args:
      model: e.g. a `jaxrnn.models.SequenceRegressor`; ``model.apply(params, xs, *, lengths=None, key=None) -> (predictions, _)``
        and, if `params` is None, ``model.init(key, input_size)``.
      loss_fn: ``(predictions, batch) -> scalar`` (e.g. ``task.loss``).
      optimizer: an optax optimizer (wrapped in `jaxrnn.diagnostics.monitored`).
      train_data: ``step -> Batch`` (e.g. ``task.stream(64, seed=0)``).
      steps: total number of steps (a resumed run continues up to it).
      params: initial parameters (default: ``model.init(key(seed), input_size of batch 0)``).
      seed: seeds the initial parameters (when not given) and the per-step dropout keys.
      clip_norm: clip gradients by global norm.
      eval_data: ``i -> Batch`` of held-out data; evaluated every `eval_every` steps and at the end
        on batches ``0 .. eval_batches - 1``.
      eval_every: evaluation period in steps (None: only at the end, if `eval_data` is given).
      eval_batches: how many held-out batches each evaluation averages.
      checkpoint_dir: where to write checkpoints, and resume from; None: no checkpoints.
      checkpoint_every: checkpoint period in steps; a checkpoint is also written at the end and on
        KeyboardInterrupt (after the last complete step).
      keep: how many checkpoints to keep.
      profile_batch: a fixed batch on which to record the temporal gradient profile
        ``log10 ||dL/dh_t||`` every `profile_every` steps (and at the start and the end), with the
        backward seed `jaxrnn.diagnostics.DEEP_SCALE`, so norms far below float32's range are recorded.
      profile_every: profile period in steps.
      progress: show a tqdm progress bar.
      desc: the progress bar's label.
      callback: called as ``callback(step, metrics)`` after every step with host-side scalars.
      mesh: train data-parallel over this `jax.sharding.Mesh` (e.g. `jaxrnn.train.data_mesh()`, all
        devices): each batch's rows are split across the devices, the parameters and optimizer state
        are replicated, and XLA all-reduces the gradients, so losses, gradient norms and parameters
        are the single-device ones up to float rounding. Training and evaluation batch sizes must be
        multiples of the device count. The profile batch is replicated (each device computes it whole).
        With several processes (``jax.distributed.initialize()``), every process calls `fit` with the
        same arguments, its `train_data` / `eval_data` return only its own rows of each batch, and
        only process 0 writes checkpoints (so `checkpoint_dir` must be on a file system all processes
        read). Checkpoints hold no device layout: a run can resume on another number of devices.

    Returns:
      A `FitResult` (params, state, history).

    Raises:
      NonFiniteError: a loss or gradient became nan/inf; reports the step and the parameters, and
        leaves the last good checkpoint in place.

    Example::

        task = jaxrnn.tasks.AddingProblem(50)
        model = jaxrnn.models.SequenceRegressor(jaxrnn.RNN(jaxrnn.LSTM(32)), output_size=1)
        result = jaxrnn.train.fit(model, task.loss, optax.adam(1e-3), task.stream(32, seed=0), steps=200,
                                  clip_norm=1.0, checkpoint_dir="runs/lstm", progress=False)
        result.history["loss"][-1]

        # the same, data-parallel over every device (batch 32 split into 32 / jax.device_count() rows each)
        result = jaxrnn.train.fit(model, task.loss, optax.adam(1e-3), task.stream(32, seed=0), steps=200,
                                  mesh=jaxrnn.train.data_mesh(), progress=False)
    """
    _checks.check_positive_int("fit", "steps", steps)
    _checks.check_positive_int("fit", "eval_batches", eval_batches)
    _checks.check_positive_int("fit", "keep", keep)
    for arg, value in (("eval_every", eval_every), ("checkpoint_every", checkpoint_every), ("profile_every", profile_every)):
        _check_every(arg, value)
    if not callable(train_data):
        raise TypeError(f"fit: argument 'train_data' must be a function step -> Batch, got {type(train_data).__name__}")
    if profile_every is not None and profile_batch is None:
        raise ValueError("fit: argument 'profile_every' needs 'profile_batch' (the batch to profile on), got None")
    if mesh is not None:
        distributed.check_mesh("fit", mesh)

    def on_devices(batch: Batch, arg: str) -> Batch:
        return batch if mesh is None else distributed.shard_batch(batch, mesh, fn="fit", arg=arg)

    trainer = _reuse(_cached_train_step, _train_step, model, loss_fn, optimizer, clip_norm, mesh)
    if params is None:
        params = model.init(jax.random.key(seed), int(train_data(0).xs.shape[-1]))
    state = trainer.init(params)
    fingerprint = _fingerprint(state)
    history = _new_history()
    if checkpoint_dir is not None and (path := latest_checkpoint(checkpoint_dir)) is not None:
        raw = load_checkpoint(path)
        if raw.get("fingerprint") != fingerprint:
            raise ValueError(
                f"fit: argument 'checkpoint_dir' holds a checkpoint of a different model or optimizer ({path}); "
                "use a fresh directory for a new run"
            )
        state = restore(state, raw["state"])
        history = _history_from_arrays(raw["history"])
    if mesh is not None:
        state = distributed.replicate(state, mesh)

    profile = None
    if profile_batch is not None:
        profile_on = profile_batch if mesh is None else distributed.replicate(profile_batch, mesh)
        profile_fn = _reuse(_cached_profile_fn, _profile_fn, model, loss_fn)

        def profile(p: Params) -> list[Any]:
            return profile_fn(p, profile_on)

    # With several processes the state is replicated: one writer (process 0) is enough and avoids races;
    # the others wait for its write, so a checkpoint one process finds is complete for all of them.
    multiprocess = mesh is not None and jax.process_count() > 1

    def save(st: TrainState, *, wait: bool = True) -> Path | None:
        if checkpoint_dir is None:
            return None
        path = None
        if not multiprocess or jax.process_index() == 0:
            tree = {"state": st, "history": _history_to_arrays(history), "fingerprint": fingerprint}
            path = save_checkpoint(checkpoint_dir, int(st.step), tree, keep=keep)
        if multiprocess and wait:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices(f"jaxrnn.fit checkpoint {int(st.step)}")
        return path

    def record_profile(st: TrainState) -> None:
        step = int(st.step)
        if profile is not None and (not history["profile_step"] or history["profile_step"][-1] != step):
            history["profile_step"].append(step)
            history["profile"].append([np.asarray(x, np.float32).tolist() for x in profile(st.params)])

    def evaluate(st: TrainState) -> float | None:
        if eval_data is None:
            return None
        losses = [trainer.evaluate(st.params, on_devices(eval_data(i), "eval_data")) for i in range(eval_batches)]
        value = float(np.mean([float(x) for x in losses]))
        if not history["eval_step"] or history["eval_step"][-1] != int(st.step):
            history["eval_step"].append(int(st.step))
            history["eval_loss"].append(value)
        return value

    start = int(state.step)
    if start == 0:
        record_profile(state)
    bar = _progress_bar(progress, steps, start, desc)
    dropout_key = jax.random.key(seed)
    try:
        for k in range(start, steps):
            batch = on_devices(train_data(k), "train_data")
            new_state, metrics = trainer.step(state, batch, jax.random.fold_in(dropout_key, k))
            host = jax.device_get({n: metrics[n] for n in (*_SCALARS, "nonfinite", "layer_grad_norms")})
            step = k + 1
            if bool(host["nonfinite"]):
                bad = [n for n, flag in jax.device_get(metrics["nonfinite_params"]).items() if flag]
                kept = latest_checkpoint(checkpoint_dir) if checkpoint_dir is not None else None
                raise NonFiniteError(step, float(host["loss"]), bad, kept, state)
            state = new_state
            history["step"].append(step)
            for n in _SCALARS:
                history[n].append(float(host[n]))
            for n, v in host["layer_grad_norms"].items():
                history["layer_grad_norms"].setdefault(n, []).append(float(v))
            if profile_every is not None and step % profile_every == 0:
                record_profile(state)
            if eval_every is not None and step % eval_every == 0:
                evaluate(state)
            if checkpoint_every is not None and step % checkpoint_every == 0:
                save(state)
            if bar is not None:
                bar.update(1)
                if step % 10 == 0 or step == steps:
                    postfix = {"loss": f"{host['loss']:.4g}", "|g|": f"{host['grad_norm']:.3g}"}
                    if history["eval_loss"]:
                        postfix["eval"] = f"{history['eval_loss'][-1]:.4g}"
                    bar.set_postfix(postfix, refresh=False)
            if callback is not None:
                callback(step, {n: host[n] for n in _SCALARS})
    except KeyboardInterrupt:
        save(state, wait=False)  # an interrupt reaches one process: the others are not there to wait
        raise
    finally:
        if bar is not None:
            bar.close()
    record_profile(state)
    evaluate(state)
    if checkpoint_every is None or int(state.step) % checkpoint_every != 0:
        save(state)
    return FitResult(params=state.params, state=state, history=history)


def _profile_fn(model: Any, loss_fn: LossFn) -> Callable[[Params, Batch], list[Any]]:
    """``(params, batch) -> [log10 ||dL/dh_t|| per probed layer]``, jitted."""
    return jax.jit(
        lambda p, b: jax.tree.leaves(
            temporal_grad_profile(
                model, p, b.xs, lambda out: loss_fn(out, b), lengths=b.lengths, scale=DEEP_SCALE
            ).log10_hidden
        )
    )


def _train_step(
    model: Any, loss_fn: LossFn, optimizer: optax.GradientTransformation, clip_norm: float | None, mesh: Mesh | None
) -> Trainer:
    return make_train_step(model, loss_fn, optimizer, clip_norm=clip_norm, mesh=mesh)


_cached_profile_fn = functools.lru_cache(maxsize=16)(_profile_fn)
_cached_train_step = functools.lru_cache(maxsize=16)(_train_step)


def _reuse(cached: Callable[..., Any], build: Callable[..., Any], *args: Any) -> Any:
    """``build(*args)``, reused when `fit` runs again on the same arguments in this process (e.g.
    resuming after an interrupt), so the step and the profile are not compiled twice."""
    try:
        return cached(*args)
    except TypeError:  # an unhashable model or loss: build a fresh one
        return build(*args)


def _progress_bar(progress: bool, total: int, initial: int, desc: str | None) -> Any:
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True, mininterval=0.5)
