"""A hierarchical RNN against a flat one on long sequences: the adding problem, accuracy and wall time.

The adding problem (Hochreiter & Schmidhuber 1997): each step carries a value drawn U(0, 1) and a
marker bit; exactly two steps are marked, one in each half of the sequence, and the target is the
sum of the two marked values. Nothing but those two steps matters, so the network has to carry
a value across hundreds of steps. A sequence counts as solved when the absolute error is below
0.04 (the paper's criterion); predicting the mean, 1, gives an MSE of 1/6.

The flat model is a GRU over all T steps. The hierarchical one, `jaxrnn.Hierarchical`, runs a GRU
inside chunks of k steps (all chunks at once, as a batch) and a second GRU across the T/k chunk
summaries, so no gradient path is longer than k + T/k steps and the sequential depth of the
computation drops from T to k + T/k. Both read out their final state with the same
`jaxrnn.models.SequenceRegressor` head, with the same hidden size, optimiser and steps. Data
is generated here (no download).

    python examples/hierarchical_long_sequences.py --out runs/hierarchical
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

import jaxrnn  # noqa: E402
from jaxrnn import models  # noqa: E402

SOLVED = 0.04  # Hochreiter & Schmidhuber's tolerance


def make_data(n: int, length: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(xs [n, length, 2] = (value, marker), targets [n, 1] = sum of the two marked values)."""
    values = rng.uniform(0.0, 1.0, (n, length)).astype(np.float32)
    markers = np.zeros((n, length), np.float32)
    half = length // 2
    rows = np.arange(n)
    markers[rows, rng.integers(0, half, n)] = 1.0
    markers[rows, rng.integers(half, length, n)] = 1.0
    targets = (values * markers).sum(axis=1, keepdims=True)
    return np.stack([values, markers], axis=-1), targets


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = _common.parser(
        __doc__.splitlines()[0], "runs/hierarchical_long_sequences",
        steps=600, length=512, chunk=16, hidden=32, batch=64, n_train=8192, n_test=1024, lr=3e-3, seed=0,
    ).parse_args(argv)
    out = _common.out_dir(args.out)
    rng = np.random.default_rng(args.seed)
    xs, targets = make_data(args.n_train, args.length, rng)
    xs_test, targets_test = make_data(args.n_test, args.length, rng)

    def batches():
        while True:
            i = rng.integers(0, args.n_train, args.batch)
            yield jnp.asarray(xs[i]), jnp.asarray(targets[i])

    gru = jaxrnn.RNN(jaxrnn.GRU(args.hidden))
    regressors = {
        "flat": models.SequenceRegressor(gru, output_size=1),
        "hierarchical": models.SequenceRegressor(jaxrnn.Hierarchical(gru, gru, chunk=args.chunk), output_size=1),
    }
    print(f"adding problem, T={args.length}; hierarchical chunks of {args.chunk} "
          f"({-(-args.length // args.chunk)} chunks); GRU({args.hidden}); {args.steps} steps of batch {args.batch}")
    metrics: dict[str, float] = {"mse_predict_mean": float(np.mean((targets_test - 1.0) ** 2))}
    histories = {}
    for name, model in regressors.items():
        print(f"\n{name}:")
        params = model.init(jax.random.key(args.seed), input_size=2)
        start = time.perf_counter()
        params, histories[name] = _common.fit(
            model.loss, params, batches(), args.steps, lr=args.lr, log_every=max(1, args.steps // 4)
        )
        metrics[f"train_seconds_{name}"] = time.perf_counter() - start

        predict = jax.jit(lambda p, x, model=model: model.apply(p, x)[0])
        test_x = jnp.asarray(xs_test)
        jax.block_until_ready(predict(params, test_x))  # compile outside the timing
        start = time.perf_counter()
        preds = np.asarray(jax.block_until_ready(predict(params, test_x)))
        metrics[f"predict_seconds_{name}"] = time.perf_counter() - start
        err = np.abs(preds - targets_test)[:, 0]
        metrics[f"mse_{name}"] = float(np.mean(err**2))
        metrics[f"accuracy_{name}"] = float(np.mean(err < SOLVED))

    print(f"\n{args.n_test} test sequences of length {args.length} (solved: |error| < {SOLVED}):")
    print(f"  {'':13s} {'MSE':>8s} {'solved':>7s} {'train s':>8s} {'predict s':>9s}")
    for name in regressors:
        print(f"  {name:13s} {metrics[f'mse_{name}']:8.4f} {metrics[f'accuracy_{name}']:7.3f} "
              f"{metrics[f'train_seconds_{name}']:8.1f} {metrics[f'predict_seconds_{name}']:9.3f}")
    print(f"  predicting the mean: MSE {metrics['mse_predict_mean']:.4f}")
    print("  (train seconds include compilation; wall times on this machine, not a benchmark)")

    plt = _common.pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, hist in histories.items():
        ax.plot(*_common.smooth(hist, 20), label=name)
    ax.axhline(metrics["mse_predict_mean"], color="gray", ls="--", label="predict the mean")
    ax.set(xlabel="step", ylabel="MSE (20-step mean)", yscale="log", title=f"adding problem, T = {args.length}")
    ax.legend()
    _common.save(fig, out / "training.png")
    return metrics


if __name__ == "__main__":
    main()
