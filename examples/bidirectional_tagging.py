"""Tagging padded variable-length sequences: a bidirectional LSTM against a unidirectional one.

Each sequence is 5 to 40 Gaussian values, right-padded with zeros to 40. The tag of step t says
whether x_t rises from its left neighbour and whether it falls to its right one (4 classes;
beyond either end of a sequence counts as minus infinity, so the tag at the last valid step
depends on where that sequence ends, not on the padding). The left half of the tag is visible to
a forward-only model, the right half is not: the best a unidirectional tagger can do on it is to
guess from x_t alone (Bayes accuracy E[max(Phi(x), 1 - Phi(x))] = 0.75), while a bidirectional
one can be near perfect. Both use `jaxrnn.models.Tagger` with masked losses and metrics.

    python examples/bidirectional_tagging.py --out runs/tagging
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

MIN_LEN, MAX_LEN = 5, 40
TAG_NAMES = ("not up, not down", "down only", "up only", "peak")  # bit 1: x_t > x_{t-1}; bit 0: x_t > x_{t+1}


def make_data(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(xs [n, MAX_LEN, 1] zero-padded, tags [n, MAX_LEN] with 0 past each length, lengths [n])."""
    lengths = rng.integers(MIN_LEN, MAX_LEN + 1, n)
    xs = np.zeros((n, MAX_LEN), np.float32)
    tags = np.zeros((n, MAX_LEN), np.int32)
    for i, n_i in enumerate(lengths):
        x = rng.standard_normal(n_i).astype(np.float32)
        padded = np.concatenate([[-np.inf], x, [-np.inf]])
        up = x > padded[:-2]      # rises from the left neighbour
        down = x > padded[2:]     # falls to the right neighbour
        xs[i, :n_i] = x
        tags[i, :n_i] = 2 * up + down
    return xs[..., None], tags, lengths.astype(np.int32)


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = _common.parser(
        __doc__.splitlines()[0], "runs/bidirectional_tagging",
        steps=1500, hidden=32, batch=64, n_train=4000, n_test=1000, lr=5e-3, seed=0,
    ).parse_args(argv)
    out = _common.out_dir(args.out)
    rng = np.random.default_rng(args.seed)
    xs, tags, lengths = make_data(args.n_train, rng)
    xs_test, tags_test, len_test = make_data(args.n_test, rng)

    def batches():
        while True:
            i = rng.integers(0, args.n_train, args.batch)
            yield jnp.asarray(xs[i]), jnp.asarray(tags[i]), jnp.asarray(lengths[i])

    taggers = {
        "bidirectional": models.Tagger(jaxrnn.Bidirectional(jaxrnn.RNN(jaxrnn.LSTM(args.hidden))), num_tags=4),
        # twice the units, so it has more parameters than the bidirectional tagger, not fewer
        "unidirectional": models.Tagger(jaxrnn.RNN(jaxrnn.LSTM(2 * args.hidden)), num_tags=4),
    }
    metrics, hists, preds = {}, {}, {}
    keys = jax.random.split(jax.random.key(args.seed), len(taggers))
    for (name, model), key in zip(taggers.items(), keys):
        print(jaxrnn.summary(model, None, (args.batch, MAX_LEN, 1)))
        print(f"training the {name} tagger ({args.steps} steps)")
        params, hists[name] = _common.fit(
            lambda p, x, t, n: model.loss(p, x, t, lengths=n), model.init(key, 1), batches(), args.steps,
            lr=args.lr, log_every=max(args.steps // 5, 1),
        )
        predict = jax.jit(model.predict)(params, jnp.asarray(xs_test), lengths=jnp.asarray(len_test))
        preds[name] = np.asarray(predict)
        last = (np.arange(len(len_test)), len_test - 1)
        valid = np.arange(MAX_LEN) < len_test[:, None]  # predict marks padded steps -1: score valid ones only
        metrics[f"token_accuracy_{name}"] = float(np.mean(preds[name][valid] == tags_test[valid]))
        metrics[f"last_step_accuracy_{name}"] = float(np.mean(preds[name][last] == tags_test[last]))
        metrics[f"sequence_accuracy_{name}"] = float(np.mean([(preds[name][i, :n] == tags_test[i, :n]).all()
                                                              for i, n in enumerate(len_test)]))

    print(f"\n{args.n_test} held-out sequences, lengths {MIN_LEN}..{MAX_LEN}, padded to {MAX_LEN}:")
    for name in taggers:
        print(f"  {name:15s} token accuracy {metrics[f'token_accuracy_{name}']:.4f}   last valid step "
              f"{metrics[f'last_step_accuracy_{name}']:.4f}   whole sequence right {metrics[f'sequence_accuracy_{name}']:.4f}")
    print("  (a unidirectional tagger cannot beat about 0.75 on the right half of the tag)")

    plt = _common.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(14, 4.2), gridspec_kw={"width_ratios": [1, 2]})
    for name, hist in hists.items():
        axes[0].plot(*_common.smooth(hist), label=name)
    axes[0].set(title="training loss (masked, 25-step mean)", xlabel="step", yscale="log")
    axes[0].legend()
    i = int(np.argmax(len_test >= 20))
    n = len_test[i]
    t = np.arange(n)
    axes[1].plot(t, xs_test[i, :n, 0], "k.-", label="x")
    for k, (name, marker) in enumerate((("bidirectional", "o"), ("unidirectional", "x"))):
        wrong = preds[name][i, :n] != tags_test[i, :n]
        axes[1].plot(t[wrong], xs_test[i, :n, 0][wrong] + 0.15 * (k + 1), marker, ls="", label=f"{name} errors")
    for s in t:
        axes[1].annotate(str(tags_test[i, s]), (s, xs_test[i, s, 0]), textcoords="offset points", xytext=(0, -12),
                         ha="center", fontsize=7)
    axes[1].set(title=f"a test sequence (length {n}) with true tags: " + ", ".join(f"{k}={v}" for k, v in enumerate(TAG_NAMES)),
                xlabel="step")
    axes[1].title.set_fontsize(9)
    axes[1].legend(fontsize=8)
    _common.save(fig, out / "bidirectional_tagging.png")
    return metrics


if __name__ == "__main__":
    main()
