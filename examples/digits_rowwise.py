"""Classifying 8x8 handwritten digits read row by row (8 steps of 8 pixels) with a GRU.

The recurrent classifier (`jaxrnn.models.SequenceClassifier`, last-state pooling) sees one pixel
row per step; the non-recurrent baselines see all 64 pixels at once: multinomial logistic
regression and a one-hidden-layer MLP, trained with the same optimiser. All are scored on the
same held-out 25% of the 1797 digits.

    python examples/digits_rowwise.py --out runs/digits

Data: examples/data/digits.csv.gz (UCI optical digits via scikit-learn; CC BY 4.0).
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

import jaxrnn  # noqa: E402
from jaxrnn import models  # noqa: E402


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """(images [1797, 8, 8] scaled to [0, 1], labels [1797]) from the bundled file."""
    with gzip.open(_common.DATA / "digits.csv.gz", "rt") as f:
        table = np.loadtxt(f, delimiter=",")
    return (table[:, :64] / 16.0).reshape(-1, 8, 8).astype(np.float32), table[:, 64].astype(np.int32)


def split(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.default_rng(seed).permutation(n)
    n_test = int(round(n * test_fraction))
    return perm[n_test:], perm[:n_test]


def mlp_loss_fn(hidden: int | None):
    """Cross-entropy of a logistic regression (hidden=None) or a one-hidden-layer ReLU MLP on flat pixels."""
    layers = [models.Dense(10)] if hidden is None else [models.Dense(hidden), models.Dense(10)]

    def init(key):
        keys = jax.random.split(key, len(layers))
        sizes = [64] + [d.features for d in layers[:-1]]
        return [d.init(k, s) for d, k, s in zip(layers, keys, sizes)]

    def logits(params, x):
        h = x.reshape(*x.shape[:-2], 64)
        for i, (d, p) in enumerate(zip(layers, params)):
            h = d.apply(p, h)
            if i < len(layers) - 1:
                h = jax.nn.relu(h)
        return h

    def loss(params, x, y):
        decay = 1e-4 * sum(jnp.sum(p["w"] ** 2) for p in params)
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits(params, x), y)) + decay

    return init, logits, loss


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = _common.parser(
        __doc__.splitlines()[0], "runs/digits_rowwise",
        steps=1500, hidden=64, batch=64, lr=3e-3, mlp_hidden=64, seed=0,
    ).parse_args(argv)
    out = _common.out_dir(args.out)
    images, labels = load_digits()
    train_idx, test_idx = split(len(labels), 0.25, args.seed)
    rng = np.random.default_rng(args.seed)

    def batches():
        while True:
            i = rng.choice(train_idx, args.batch, replace=False)
            yield jnp.asarray(images[i]), jnp.asarray(labels[i])

    def accuracy(pred):
        return float(np.mean(np.asarray(pred) == labels[test_idx]))

    x_test = jnp.asarray(images[test_idx])
    k_rnn, k_lr, k_mlp = jax.random.split(jax.random.key(args.seed), 3)

    model = models.SequenceClassifier(jaxrnn.RNN(jaxrnn.GRU(args.hidden)), num_classes=10, pool="last")
    print(jaxrnn.summary(model, None, (args.batch, 8, 8)))
    print(f"training the row-by-row GRU classifier ({args.steps} steps)")
    params, rnn_hist = _common.fit(lambda p, x, y: model.loss(p, x, y), model.init(k_rnn, 8), batches(), args.steps,
                                   lr=args.lr, log_every=max(args.steps // 5, 1))
    rnn_pred = np.asarray(jax.jit(model.predict)(params, x_test))

    results = {"gru_rows": accuracy(rnn_pred)}
    hists = {"GRU, row by row": rnn_hist}
    for name, hidden, key in (("logistic_regression", None, k_lr), ("mlp", args.mlp_hidden, k_mlp)):
        init, logits, loss = mlp_loss_fn(hidden)
        print(f"training the {name.replace('_', ' ')} baseline on flat pixels ({args.steps} steps)")
        p, hist = _common.fit(loss, init(key), batches(), args.steps, lr=args.lr)
        results[name] = accuracy(jnp.argmax(logits(p, x_test), -1))
        hists[name.replace("_", " ") + ", flat pixels"] = hist

    metrics = {f"test_accuracy_{k}": v for k, v in results.items()}
    metrics["n_test"] = float(len(test_idx))
    print(f"\ntest accuracy on {len(test_idx)} held-out digits:")
    for k, v in results.items():
        print(f"  {k:22s} {v:.4f}")

    plt = _common.pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for name, hist in hists.items():
        axes[0].plot(*_common.smooth(hist), label=name)
    axes[0].set(title="training loss (25-step mean)", xlabel="step", yscale="log")
    axes[0].legend(fontsize=8)
    confusion = np.zeros((10, 10), int)
    np.add.at(confusion, (labels[test_idx], rnn_pred), 1)
    axes[1].imshow(confusion, cmap="Blues")
    for (i, j), c in np.ndenumerate(confusion):
        if c:
            axes[1].text(j, i, str(c), ha="center", va="center", fontsize=7)
    axes[1].set(title=f"GRU confusion (acc {results['gru_rows']:.3f})", xlabel="predicted", ylabel="true",
                xticks=range(10), yticks=range(10))
    wrong = np.flatnonzero(rnn_pred != labels[test_idx])[:8]
    axes[2].axis("off")
    axes[2].set_title("GRU errors (true -> predicted)")
    for k, i in enumerate(wrong):
        sub = axes[2].inset_axes([(k % 4) * 0.25, 0.5 - (k // 4) * 0.5, 0.22, 0.4])
        sub.imshow(images[test_idx][i], cmap="gray_r")
        sub.set_title(f"{labels[test_idx][i]} -> {rnn_pred[i]}", fontsize=8)
        sub.axis("off")
    _common.save(fig, out / "digits_rowwise.png")
    return metrics


if __name__ == "__main__":
    main()
