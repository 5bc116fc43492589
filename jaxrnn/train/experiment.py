"""One training run on a synthetic task, measured before and after: what `jaxrnn train` and the demo run.

`run_experiment` builds a `jaxrnn.models` model around a (stacked) recurrent layer, records the temporal
gradient profile ``||dL/dh_t||`` and the Lyapunov exponent of the step Jacobians at initialisation,
trains with `fit`, measures the same after training, and returns it all as an `ExperimentResult`.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxrnn import _checks
from jaxrnn.cells import GRU, LSTM, SimpleRNN
from jaxrnn.diagnostics.jacobian import jacobian_norms
from jaxrnn.diagnostics.temporal import DEEP_SCALE, decay_rate, temporal_grad_profile, vanishing_ratio
from jaxrnn.initializers import chrono_init
from jaxrnn.layers import RNN, Stacked
from jaxrnn.models import SequenceRegressor, Tagger
from jaxrnn.tasks import Batch, Task
from jaxrnn.train.fit import fit

CELLS: dict[str, Callable[[int], Any]] = {"simple": SimpleRNN, "lstm": LSTM, "gru": GRU}
OPTIMIZERS: dict[str, Callable[[float], optax.GradientTransformation]] = {
    "adam": optax.adam,
    "adamw": optax.adamw,
    "rmsprop": optax.rmsprop,
    "sgd": lambda lr: optax.sgd(lr, momentum=0.9),
}


@functools.lru_cache(maxsize=32)
def make_optimizer(name: str, learning_rate: float) -> optax.GradientTransformation:
    """The optimizer `name` (a key of `OPTIMIZERS`) at `learning_rate`; the same object for the same
    arguments, so `fit` reuses its compiled step when a run is resumed in the same process."""
    _checks.check_choice("make_optimizer", "name", name, tuple(OPTIMIZERS))
    return OPTIMIZERS[name](learning_rate)


def build_model(cell: str, hidden: int, task: Task, *, layers: int = 1) -> Any:
    """A model for `task` over ``layers`` stacked `RNN` s of `cell` (``"simple"``, ``"lstm"``, ``"gru"``):
    a `jaxrnn.models.SequenceRegressor` (last state) for one prediction per sequence, a
    `jaxrnn.models.Tagger` for a prediction at every step."""
    _checks.check_choice("build_model", "cell", cell, tuple(CELLS))
    _checks.check_positive_int("build_model", "hidden", hidden)
    _checks.check_positive_int("build_model", "layers", layers)
    rnns = [RNN(CELLS[cell](hidden)) for _ in range(layers)]
    layer = rnns[0] if layers == 1 else Stacked(rnns)
    if task.readout == "last":
        return SequenceRegressor(layer, output_size=task.output_size)
    return Tagger(layer, num_tags=task.output_size)


def init_params(model: Any, task: Task, seed: int, *, chrono: bool = False) -> Any:
    """``model.init(key(seed), task.input_size)``; with `chrono`, the layer's gate biases get
    `jaxrnn.chrono_init` with ``t_max = task.length`` (key ``seed + 1``)."""
    params = model.init(jax.random.key(seed), task.input_size)
    if chrono:
        layer_params = chrono_init(model.layer, params["layer"], t_max=task.length, key=jax.random.key(seed + 1))
        params = {**params, "layer": layer_params}
    return params


def held_out(task: Task, batch_size: int, seed: int) -> Callable[[int], Batch]:
    """The held-out stream of a run with `seed`, drawn independently of its training stream
    ``task.stream(batch_size, seed)``."""
    return task.stream(batch_size, seed + 1_000_003)


@dataclasses.dataclass
class ExperimentResult:
    """Measurements of one run; profiles are ``log10 ||dL/dh_t||`` of the top layer, ``[T]``."""

    name: str
    num_params: int
    test_loss: float
    baseline: float
    ratio_init: float
    ratio_trained: float
    rate_init: float
    rate_trained: float
    lyapunov_init: float
    lyapunov_trained: float
    profile_init: np.ndarray
    profile_trained: np.ndarray
    history: dict[str, Any]
    seconds: float


@functools.lru_cache(maxsize=16)
def make_measure(model: Any, task: Task, batch_size: int, seed: int) -> Callable[[Any], tuple[np.ndarray, float, float, float]]:
    """A compiled ``params -> (log10 profile [T] of the top layer, vanishing ratio, decay rate, Lyapunov
    exponent)`` on held-out batch 0 of `held_out` (the Lyapunov exponent of the first layer, averaged
    over 4 sequences). The profile uses the backward seed `DEEP_SCALE`, so it reaches far below
    float32's range. Cached: one compile per model, task and batch."""
    batch = held_out(task, batch_size, seed)(0)
    layer = model.layer.layers[0] if isinstance(model.layer, Stacked) else model.layer
    stacked = isinstance(model.layer, Stacked)

    @jax.jit
    def compute(params: Any) -> tuple[Any, Any, Any, Any]:
        prof = temporal_grad_profile(
            model, params, batch.xs, lambda out: task.loss(out, batch), lengths=batch.lengths, scale=DEEP_SCALE
        )
        cell_params = params["layer"]["layer_0"] if stacked else params["layer"]
        lyap = jnp.mean(jacobian_norms(layer, cell_params, batch.xs[:4]).lyapunov)
        top = jax.tree.leaves(prof.log10_hidden)[-1]
        return top, jax.tree.leaves(vanishing_ratio(prof))[-1], jax.tree.leaves(decay_rate(prof))[-1], lyap

    def measure(params: Any) -> tuple[np.ndarray, float, float, float]:
        top, ratio, rate, lyap = compute(params)
        return np.asarray(top, np.float64), float(ratio), float(rate), float(lyap)

    return measure


def run_experiment(
    name: str,
    task: Task,
    *,
    cell: str,
    hidden: int,
    layers: int = 1,
    steps: int,
    batch_size: int = 64,
    optimizer: str = "adam",
    learning_rate: float = 1e-3,
    clip_norm: float | None = 1.0,
    chrono: bool = False,
    seed: int = 0,
    eval_every: int | None = None,
    eval_batches: int = 4,
    profile_every: int | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int | None = 500,
    progress: bool = True,
) -> ExperimentResult:
    """Builds, measures at init, trains (`fit`) and measures again one model on `task`.

    Training batches are ``task.stream(batch_size, seed)``, held-out ones `held_out` (batch 0 of which
    the diagnostics use); parameters come from `init_params`.
    """
    tx = make_optimizer(optimizer, learning_rate)
    model = build_model(cell, hidden, task, layers=layers)
    params = init_params(model, task, seed, chrono=chrono)
    eval_data = held_out(task, batch_size, seed)
    measure = make_measure(model, task, batch_size, seed)
    profile_init, ratio_init, rate_init, lyap_init = measure(params)
    start = time.perf_counter()
    result = fit(
        model,
        task.loss,
        tx,
        task.stream(batch_size, seed),
        steps=steps,
        params=params,
        seed=seed,
        clip_norm=clip_norm,
        eval_data=eval_data,
        eval_every=eval_every,
        eval_batches=eval_batches,
        checkpoint_dir=checkpoint_dir,
        checkpoint_every=checkpoint_every,
        profile_batch=eval_data(0),
        profile_every=profile_every,
        progress=progress,
        desc=name,
    )
    seconds = time.perf_counter() - start
    profile_trained, ratio_trained, rate_trained, lyap_trained = measure(result.params)
    return ExperimentResult(
        name=name,
        num_params=int(sum(np.size(x) for x in jax.tree.leaves(params))),
        test_loss=float(result.history["eval_loss"][-1]),
        baseline=task.baseline,
        ratio_init=ratio_init,
        ratio_trained=ratio_trained,
        rate_init=rate_init,
        rate_trained=rate_trained,
        lyapunov_init=lyap_init,
        lyapunov_trained=lyap_trained,
        profile_init=profile_init,
        profile_trained=profile_trained,
        history=result.history,
        seconds=seconds,
    )


def format_table(results: list[ExperimentResult], *, loss_name: str = "test MSE") -> str:
    """A markdown table of results (one row per run), as the demo prints it."""
    header = (
        f"| model | params | {loss_name} | / baseline | log10 ratio init | log10 ratio trained "
        "| decay/step init | decay/step trained | Lyapunov init | Lyapunov trained |"
    )
    rows = [header, "|" + "---|" * (header.count("|") - 1)]
    for r in results:
        rows.append(
            f"| {r.name} | {r.num_params} | {r.test_loss:.4f} | {r.test_loss / r.baseline:.3f} | "
            f"{r.ratio_init:+.2f} | {r.ratio_trained:+.2f} | {r.rate_init:.4f} | {r.rate_trained:.4f} | "
            f"{r.lyapunov_init:+.4f} | {r.lyapunov_trained:+.4f} |"
        )
    return "\n".join(rows)
