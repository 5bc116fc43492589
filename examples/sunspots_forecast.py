"""Forecasting yearly sunspot numbers (1700-2008) with recurrent networks, against classical baselines.

Two jaxrnn models read 40-year windows of the (standardised) series:

- `AutoregressiveForecaster`: predicts next year's number at every step (teacher forcing); multi-year
  forecasts feed each prediction back in, one cell `step` at a time.
- `DirectForecaster`: reads the window and predicts the next 11 years (one solar cycle) at once.

Baselines: persistence (next year = this year) and a least-squares AR(p) model with p chosen by AIC.
Everything is fitted on 1700-1978 and scored on the held-out years 1979-2008: one-step-ahead RMSE,
and RMSE per horizon 1..11 over every forecast origin in the test period.

    python examples/sunspots_forecast.py --out runs/sunspots

Data: examples/data/sunspots.csv (NOAA NGDC via statsmodels; public domain).
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

import jaxrnn  # noqa: E402
from jaxrnn import models  # noqa: E402

TEST_START = 1979
CYCLE = 11


def load_sunspots() -> tuple[np.ndarray, np.ndarray]:
    """(years, sunspot numbers) from the bundled CSV."""
    table = np.genfromtxt(_common.DATA / "sunspots.csv", delimiter=",", skip_header=1)
    return table[:, 0].astype(int), table[:, 1].astype(np.float64)


def fit_ar(series: np.ndarray, p: int) -> np.ndarray:
    """Least-squares AR(p) with intercept: coefficients [c, a_1..a_p] of x_t = c + sum_k a_k x_{t-k}."""
    X = np.stack([np.ones(len(series) - p)] + [series[p - k : len(series) - k] for k in range(1, p + 1)], 1)
    coef, *_ = np.linalg.lstsq(X, series[p:], rcond=None)
    return coef


def ar_aic(series: np.ndarray, p: int, max_p: int) -> float:
    """AIC of an AR(p) fit on the same effective sample for every p (the first `max_p` points dropped)."""
    coef = fit_ar(series, p)
    y = series[max_p:]
    X = np.stack([np.ones(len(y))] + [series[max_p - k : len(series) - k] for k in range(1, p + 1)], 1)
    rss = float(np.sum((y - X @ coef) ** 2))
    return len(y) * np.log(rss / len(y)) + 2 * (p + 1)


def ar_forecast(coef: np.ndarray, history: np.ndarray, horizon: int) -> np.ndarray:
    """Recursive AR forecast of the next `horizon` values after `history`."""
    p = len(coef) - 1
    buf = list(history[-p:])
    out = []
    for _ in range(horizon):
        nxt = coef[0] + sum(coef[k] * buf[-k] for k in range(1, p + 1))
        out.append(nxt)
        buf.append(nxt)
    return np.array(out)


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def windows(z: np.ndarray, ends: np.ndarray, width: int) -> np.ndarray:
    """[len(ends), width, 1] windows of `z` ending at (and including) each index in `ends`."""
    return np.stack([z[e - width + 1 : e + 1] for e in ends])[..., None].astype(np.float32)


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = _common.parser(
        __doc__.splitlines()[0], "runs/sunspots_forecast",
        steps=800, hidden=16, window=40, batch=32, lr=1e-3, max_p=15, seed=0,
    ).parse_args(argv)
    out = _common.out_dir(args.out)
    years, x = load_sunspots()
    n_train = int(np.sum(years < TEST_START))
    train = x[:n_train]
    mean, std = train.mean(), train.std()
    z = (x - mean) / std
    W = args.window
    rng = np.random.default_rng(args.seed)

    # ---- baselines ---------------------------------------------------------------------------
    p = min(range(1, args.max_p + 1), key=lambda q: ar_aic(train, q, args.max_p))
    coef = fit_ar(train, p)
    test_idx = np.arange(n_train, len(x))                      # targets: 1979..2008
    persistence_1 = x[test_idx - 1]
    ar_1 = np.array([ar_forecast(coef, x[:t], 1)[0] for t in test_idx])

    # ---- the two recurrent models --------------------------------------------------------------
    layer = jaxrnn.RNN(jaxrnn.GRU(args.hidden))
    ar_model = models.AutoregressiveForecaster(layer, num_features=1)
    direct = models.DirectForecaster(layer, horizon=CYCLE, output_size=1)
    k_ar, k_direct = jax.random.split(jax.random.key(args.seed))

    def ar_batches():
        while True:  # random windows entirely inside the training years
            ends = rng.integers(W - 1, n_train, args.batch)
            yield (jnp.asarray(windows(z, ends, W)),)

    def direct_batches():
        while True:  # a window and the CYCLE years after it, all inside the training years
            ends = rng.integers(W - 1, n_train - CYCLE, args.batch)
            targets = np.stack([z[e + 1 : e + 1 + CYCLE] for e in ends])[..., None].astype(np.float32)
            yield jnp.asarray(windows(z, ends, W)), jnp.asarray(targets)

    print(jaxrnn.summary(ar_model, None, (args.batch, W, 1)))
    print(f"training the autoregressive GRU forecaster ({args.steps} steps)")
    ar_params, ar_hist = _common.fit(ar_model.loss, ar_model.init(k_ar, 1), ar_batches(), args.steps, lr=args.lr,
                                     log_every=max(args.steps // 4, 1))
    print(f"training the direct {CYCLE}-year GRU forecaster ({args.steps} steps)")
    direct_params, direct_hist = _common.fit(direct.loss, direct.init(k_direct, 1), direct_batches(), args.steps,
                                             lr=args.lr, log_every=max(args.steps // 4, 1))

    # one step ahead on the test years, each from the W years before it
    ctx = jnp.asarray(windows(z, test_idx - 1, W))
    preds, _ = jax.jit(ar_model.apply)(ar_params, ctx)
    rnn_1 = np.asarray(preds[:, -1, 0]) * std + mean

    # multi-step: every origin in the test period with a full cycle ahead of it
    origins = np.arange(n_train - 1, len(x) - CYCLE)           # last observed index
    truth = np.stack([x[o + 1 : o + 1 + CYCLE] for o in origins])
    ctx = jnp.asarray(windows(z, origins, W))
    rollout = np.asarray(jax.jit(ar_model.forecast, static_argnums=2)(ar_params, ctx, CYCLE))[..., 0] * std + mean
    direct_out = np.asarray(jax.jit(direct.apply)(direct_params, ctx)[0])[..., 0] * std + mean
    ar_multi = np.stack([ar_forecast(coef, x[: o + 1], CYCLE) for o in origins])
    pers_multi = np.repeat(x[origins][:, None], CYCLE, 1)
    by_h = {
        "persistence": np.sqrt(((pers_multi - truth) ** 2).mean(0)),
        f"AR({p})": np.sqrt(((ar_multi - truth) ** 2).mean(0)),
        "GRU rollout": np.sqrt(((rollout - truth) ** 2).mean(0)),
        "GRU direct": np.sqrt(((direct_out - truth) ** 2).mean(0)),
    }

    metrics = {
        "ar_order": float(p),
        "rmse_1step_persistence": rmse(persistence_1, x[test_idx]),
        "rmse_1step_ar": rmse(ar_1, x[test_idx]),
        "rmse_1step_gru": rmse(rnn_1, x[test_idx]),
        "rmse_multi_persistence": float(by_h["persistence"].mean()),
        "rmse_multi_ar": float(by_h[f"AR({p})"].mean()),
        "rmse_multi_gru_rollout": float(by_h["GRU rollout"].mean()),
        "rmse_multi_gru_direct": float(by_h["GRU direct"].mean()),
        "final_train_loss_ar": ar_hist[-1],
        "final_train_loss_direct": direct_hist[-1],
    }
    print(f"\nheld-out years {TEST_START}-{years[-1]} ({len(test_idx)} one-step targets, {len(origins)} origins)")
    print(f"one-step RMSE   persistence {metrics['rmse_1step_persistence']:.2f}   AR({p}) {metrics['rmse_1step_ar']:.2f}"
          f"   GRU {metrics['rmse_1step_gru']:.2f}")
    print(f"1..{CYCLE}-year RMSE (mean over horizons)   " + "   ".join(f"{k} {v.mean():.2f}" for k, v in by_h.items()))

    plt = _common.pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.5))
    ax = axes[0]
    ax.plot(years[n_train - 40 :], x[n_train - 40 :], "k.-", label="observed")
    ax.plot(years[test_idx], persistence_1, ":", color="C0", label=f"persistence ({metrics['rmse_1step_persistence']:.1f})")
    ax.plot(years[test_idx], ar_1, "--", color="C1", label=f"AR({p}) ({metrics['rmse_1step_ar']:.1f})")
    ax.plot(years[test_idx], rnn_1, "-", color="C2", label=f"GRU ({metrics['rmse_1step_gru']:.1f})")
    ax.axvline(TEST_START - 0.5, color="grey", lw=0.8)
    ax.set(title="one-step-ahead forecasts (test RMSE)", xlabel="year", ylabel="sunspot number")
    ax.legend(fontsize=8)
    ax = axes[1]
    o = 0  # the forecast made at the end of the training years
    span = years[origins[o] + 1 : origins[o] + 1 + CYCLE]
    ax.plot(years[n_train - 40 : n_train + CYCLE], x[n_train - 40 : n_train + CYCLE], "k.-", label="observed")
    ax.plot(span, ar_multi[o], "--", color="C1", label=f"AR({p})")
    ax.plot(span, rollout[o], "-", color="C2", label="GRU rollout (cell step)")
    ax.plot(span, direct_out[o], "-", color="C3", label="GRU direct")
    ax.set(title=f"{CYCLE}-year forecast from {years[origins[o]]}", xlabel="year")
    ax.legend(fontsize=8)
    ax = axes[2]
    for k, (name, curve) in enumerate(by_h.items()):
        ax.plot(np.arange(1, CYCLE + 1), curve, "o-", ms=3, color=f"C{k}", label=name)
    ax.set(title="test RMSE by horizon", xlabel="years ahead", ylabel="RMSE")
    ax.legend(fontsize=8)
    _common.save(fig, out / "sunspots_forecast.png")
    return metrics


if __name__ == "__main__":
    main()
