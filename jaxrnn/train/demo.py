"""The demo: SimpleRNN, LSTM and GRU on the adding problem, gradients measured before and after training.

Run as ``make demo``, ``jaxrnn demo`` or ``python -m jaxrnn demo``. It prints one table row per model
(test MSE against the 1/6 baseline; the vanishing ratio ``log10(||dL/dh_0|| / ||dL/dh_{T-1}||)`` and
decay rate at init and after training; the Lyapunov exponent of the step Jacobians) and writes PNGs:

- ``profiles_init.png``: ``||dL/dh_t||`` against t at initialisation, including chrono-initialised
  LSTM and GRU (Tallec & Ollivier 2018);
- ``profiles_trained.png``: the same after training;
- ``profile_heatmaps.png``: the profile over training, one panel per model;
- ``loss_curves.png``: training and held-out loss against the baseline;

plus ``results.json`` with every number.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from jaxrnn.diagnostics.plots import require_matplotlib
from jaxrnn.tasks import AddingProblem, Task
from jaxrnn.train.experiment import (
    ExperimentResult,
    build_model,
    format_table,
    init_params,
    make_measure,
    run_experiment,
)

DEMO_DEFAULTS: dict[str, Any] = {"length": 100, "hidden": 32, "steps": 1500, "batch_size": 64, "learning_rate": 1e-2}

# (label, cell, chrono): trained in the demo.
TRAINED = (("SimpleRNN", "simple", False), ("LSTM", "lstm", False), ("GRU", "gru", False))
# Measured at init only, to show what chrono initialisation changes.
INIT_ONLY = (("LSTM (chrono)", "lstm", True), ("GRU (chrono)", "gru", True))


def init_profiles(
    task: Task, hidden: int, batch_size: int, seed: int, configs: tuple[tuple[str, str, bool], ...]
) -> dict[str, dict[str, Any]]:
    """Init-time measurements (profile, ratio, rate, Lyapunov) of untrained configurations, on the batch
    `run_experiment` measures the trained ones on."""
    out = {}
    for label, cell, chrono in configs:
        model = build_model(cell, hidden, task)
        params = init_params(model, task, seed, chrono=chrono)
        profile, ratio, rate, lyap = make_measure(model, task, batch_size, seed)(params)
        out[label] = {"profile": profile, "ratio": ratio, "rate": rate, "lyapunov": lyap}
    return out


def _running_mean(values: list[float], window: int) -> np.ndarray:
    v = np.asarray(values, np.float64)
    if v.size == 0:
        return v
    c = np.cumsum(np.insert(v, 0, 0.0))
    idx = np.arange(1, v.size + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def write_plots(out: str | os.PathLike, results: list[ExperimentResult], extra_init: dict[str, dict[str, Any]], task: Task) -> list[Path]:
    """Writes the demo's PNGs and ``results.json`` to `out`; returns the PNG paths."""
    from matplotlib.figure import Figure

    from jaxrnn.diagnostics.plots import plot_loss_curves, plot_profile_heatmap, plot_temporal_norms

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    T = task.length
    init = {r.name: 10.0 ** r.profile_init for r in results}
    init.update({k: 10.0 ** v["profile"] for k, v in extra_init.items()})
    paths = [out / "profiles_init.png", out / "profiles_trained.png", out / "loss_curves.png", out / "profile_heatmaps.png"]
    plot_temporal_norms(init, path=paths[0], title=f"{task.name} problem, T={T}: gradient profile at initialisation")
    plot_temporal_norms(
        {r.name: 10.0 ** r.profile_trained for r in results},
        path=paths[1],
        title=f"{task.name} problem, T={T}: gradient profile after training",
    )
    train = {r.name: (r.history["step"], _running_mean(r.history["loss"], 50)) for r in results}
    held = {r.name: (r.history["eval_step"], r.history["eval_loss"]) for r in results}
    plot_loss_curves(
        train, held_out=held, baseline=task.baseline, baseline_label=f"baseline {task.baseline:.4f}", path=paths[2],
        title=f"{task.name} problem, T={T}: loss (training: 50-step running mean)",
    )
    fig = Figure(figsize=(5.0 * len(results), 4.0), layout="constrained")
    heat = [np.asarray([p[-1] for p in r.history["profile"]], np.float64) for r in results]
    finite = np.concatenate([h[np.isfinite(h)] for h in heat])
    for i, (r, profiles) in enumerate(zip(results, heat)):  # one colour scale for all panels
        ax = fig.add_subplot(1, len(results), i + 1)
        plot_profile_heatmap(
            r.history["profile_step"], profiles, ax=ax, log10=True, title=r.name, vmin=float(finite.min()), vmax=float(finite.max())
        )
    fig.savefig(paths[3], dpi=110)
    summary = {
        "task": task.name,
        "length": T,
        "baseline": task.baseline,
        "trained": [
            {k: v for k, v in vars(r).items() if k not in ("history", "profile_init", "profile_trained")}
            | {"profile_init_log10": r.profile_init.tolist(), "profile_trained_log10": r.profile_trained.tolist()}
            for r in results
        ],
        "init_only": {k: {"ratio": v["ratio"], "rate": v["rate"], "lyapunov": v["lyapunov"], "profile_log10": v["profile"].tolist()} for k, v in extra_init.items()},
    }
    (out / "results.json").write_text(json.dumps(summary, indent=1))
    return paths


def run_demo(
    out: str | os.PathLike = "out/demo",
    *,
    length: int = DEMO_DEFAULTS["length"],
    hidden: int = DEMO_DEFAULTS["hidden"],
    steps: int = DEMO_DEFAULTS["steps"],
    batch_size: int = DEMO_DEFAULTS["batch_size"],
    learning_rate: float = DEMO_DEFAULTS["learning_rate"],
    seed: int = 0,
    progress: bool = True,
) -> list[ExperimentResult]:
    """Runs the demo (see the module docstring); returns the per-model results."""
    require_matplotlib()  # fail now, not after minutes of training
    start = time.perf_counter()
    task = AddingProblem(length)
    out = Path(out)
    print(
        f"jaxrnn demo: the adding problem, T={length}, H={hidden}, {steps} Adam steps (lr {learning_rate}, "
        f"batch {batch_size}, clip 1.0) per model.\nBaseline (always predict 1): MSE = 1/6 = {task.baseline:.4f}. "
        f"Output folder: {out.resolve()}",
        flush=True,
    )
    extra = init_profiles(task, hidden, batch_size, seed, INIT_ONLY)
    results = [
        run_experiment(
            label, task, cell=cell, hidden=hidden, steps=steps, batch_size=batch_size, learning_rate=learning_rate,
            clip_norm=1.0, chrono=chrono, seed=seed, eval_every=max(steps // 15, 1), profile_every=max(steps // 30, 1),
            checkpoint_dir=None, progress=progress,
        )
        for label, cell, chrono in TRAINED
    ]
    print()
    print(format_table(results))
    print()
    print("At init, untrained (chrono initialisation, Tallec & Ollivier 2018):")
    for label, v in extra.items():
        print(f"  {label}: log10 ratio {v['ratio']:+.2f}, decay/step {v['rate']:.4f}, Lyapunov {v['lyapunov']:+.4f}")
    print(
        "\nlog10 ratio = log10(||dL/dh_0|| / ||dL/dh_T-1||) on a held-out batch (more negative: more vanishing); "
        "decay/step = least-squares slope of log10 ||dL/dh_t|| per step; Lyapunov = mean log growth per step of "
        "the step Jacobian (first layer, full carry)."
    )
    paths = write_plots(out, results, extra, task)
    print(f"\nWrote {', '.join(p.name for p in paths)} and results.json to {out.resolve()} "
          f"({time.perf_counter() - start:.0f} s in all).")
    return results
