"""What the examples share: bundled data paths, a command line, a jitted optax training loop, plots."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import jax
import numpy as np
import optax

DATA = Path(__file__).resolve().parent / "data"


def parser(description: str, out: str, **defaults: Any) -> argparse.ArgumentParser:
    """An argument parser with ``--out`` (where plots go) and one ``--name`` option per default."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--out", default=out, help=f"folder for plots and outputs (default: {out})")
    for name, value in defaults.items():
        p.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    return p


def out_dir(path: str) -> Path:
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    return out


def fit(
    loss: Callable[..., jax.Array],
    params: Any,
    batches: Iterator[tuple],
    steps: int,
    *,
    lr: float = 3e-3,
    clip: float = 1.0,
    log_every: int = 0,
    key: jax.Array | None = None,
) -> tuple[Any, list[float]]:
    """Adam with global-norm clipping for `steps` steps of ``loss(params, *batch, key=...)``.

    Returns the trained params and the loss of every step. With `key`, each step gets a fresh
    subkey (for dropout); without, ``loss`` is called without one.
    """
    tx = optax.chain(optax.clip_by_global_norm(clip), optax.adam(lr))
    state = tx.init(params)

    @jax.jit
    def step(params, state, batch, k):
        kw = {} if k is None else {"key": k}
        value, grads = jax.value_and_grad(lambda p: loss(p, *batch, **kw))(params)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, value

    history = []
    start = time.perf_counter()
    for i in range(steps):
        sub = None
        if key is not None:
            key, sub = jax.random.split(key)
        params, state, value = step(params, state, next(batches), sub)
        value = float(value)
        if not np.isfinite(value):
            raise FloatingPointError(f"non-finite loss {value} at step {i}")
        history.append(value)
        if log_every and (i + 1) % log_every == 0:
            print(f"  step {i + 1:5d}  loss {value:.4f}  ({time.perf_counter() - start:.0f}s)", flush=True)
    return params, history


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (examples never open windows)."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def smooth(values: list[float], window: int = 25) -> tuple[np.ndarray, np.ndarray]:
    """(steps, running mean over `window` steps) of a loss history, for plotting; raw if it is shorter."""
    values = np.asarray(values, np.float64)
    if len(values) < window:
        return np.arange(len(values)), values
    return np.arange(window - 1, len(values)), np.convolve(values, np.ones(window) / window, mode="valid")


def save(fig: Any, path: Path) -> None:
    """Lays out, writes (PNG, 110 dpi) and closes a figure, and says where it went."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    print(f"plot saved to {path}")
