"""Sequence heads: pooling, classifier, regressor, forecasters, tagger.

References are independent of the code under test: each padded sequence is re-run alone, unpadded
(so masking and pooling are checked against plain runs), and the read-outs, losses and metrics are
written out again in numpy.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
from jaxrnn import models

T, F = 6, 3
LENGTHS = np.array([[6, 2, 0], [1, 4, 5]])  # two batch dims, the edge lengths included


def _xs(key=1, batch=(2, 3), steps=T):
    return np.random.default_rng(key).standard_normal((*batch, steps, F)).astype(np.float32)


def _init(model, seed, *args):
    """Random parameters with `init`'s structure (biases included), without compiling the initialisers."""
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), *args))
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda s: jnp.asarray(0.5 * rng.standard_normal(s.shape), s.dtype), shapes)


def _sig(z):
    return 1.0 / (1.0 + np.exp(-z))


def np_cell(cell, p, x):
    """The cell's equations written out in float64 numpy over one unpadded sequence x [T, I] -> [T, H]."""
    p = {k: np.asarray(v, np.float64) for k, v in p.items()}
    H = cell.hidden_size
    h, c, out = np.zeros(H), np.zeros(H), []
    for x_t in np.asarray(x, np.float64):
        a = x_t @ p["w_ih"] + p.get("b", 0.0)
        hh = h @ p["w_hh"]
        if isinstance(cell, jaxrnn.LSTM):
            i, f, g, o = np.split(a + hh, 4)
            c = _sig(f) * c + _sig(i) * np.tanh(g)
            h = _sig(o) * np.tanh(c)
        elif isinstance(cell, jaxrnn.GRU):
            r, z = _sig(a[:H] + hh[:H]), _sig(a[H : 2 * H] + hh[H : 2 * H])
            n = np.tanh(a[2 * H :] + r * (hh[2 * H :] + p.get("b_hn", 0.0)))
            h = (1 - z) * n + z * h
        else:
            h = np.tanh(a + hh) if cell.activation == "tanh" else np.maximum(a + hh, 0)
        out.append(h)
    return np.array(out).reshape(len(out), H)


def np_layer(layer, p, x):
    """A jaxrnn layer on one unpadded sequence x [T, I], composed in numpy from `np_cell`."""
    if isinstance(layer, jaxrnn.RNN):
        return np_cell(layer.cell, p, x[::-1])[::-1] if layer.reverse else np_cell(layer.cell, p, x)
    if isinstance(layer, jaxrnn.Bidirectional):
        assert layer.merge == "concat"
        return np.concatenate([np_layer(layer.forward, p["forward"], x), np_layer(layer.backward, p["backward"], x)], -1)
    h = np.asarray(x, np.float64)
    for i, sub in enumerate(layer.layers):
        out = np_layer(sub, p[f"layer_{i}"], h)
        h = out + h if layer.residual and i > 0 else out
    return h


def _alone(layer, params, x, length):
    """The layer's outputs on one unpadded sequence (float64 numpy reference)."""
    return np_layer(layer, params, np.asarray(x)[:length])


def _reference_pool(layer, params, xs, lengths, how):
    """Pools each sequence's unpadded outputs in numpy; zeros for an empty sequence."""
    out = np.zeros((*lengths.shape, layer.output_size), np.float32)
    for idx in np.ndindex(*lengths.shape):
        n = int(lengths[idx])
        if n == 0:
            continue
        ys = _alone(layer, params, xs[idx], n)
        out[idx] = {"last": ys[-1], "mean": ys.mean(0), "max": ys.max(0)}[how]
    return out


def _bidirectional_last(layer, params, xs, lengths):
    """Forward state after the last valid step ++ backward state after reading back to step 0."""
    out = np.zeros((*lengths.shape, layer.output_size), np.float32)
    for idx in np.ndindex(*lengths.shape):
        n = int(lengths[idx])
        if n:
            x = np.asarray(xs[idx])[:n]
            h_f = np_cell(layer.forward.cell, params["forward"], x)[-1]
            h_b = np_cell(layer.backward.cell, params["backward"], x[::-1])[-1]
            out[idx] = np.concatenate([h_f, h_b])
    return out


def _log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


LAYERS = {
    "gru": jaxrnn.RNN(jaxrnn.GRU(5)),
    "stacked": jaxrnn.Stacked([jaxrnn.RNN(jaxrnn.LSTM(4)), jaxrnn.RNN(jaxrnn.SimpleRNN(5))]),
}


@pytest.mark.parametrize("how", ["last", "mean", "max"])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_pooling_matches_unpadded_runs(name, how):
    layer = LAYERS[name]
    model = models.SequenceClassifier(layer, num_classes=4, pool=how)
    params = _init(model, 0, F)
    xs = _xs()
    pooled, _ = jax.jit(model.features)(params, xs, lengths=jnp.asarray(LENGTHS))
    want = _reference_pool(layer, params["layer"], xs, LENGTHS, how)
    np.testing.assert_allclose(np.asarray(pooled), want, atol=2e-6)

    # logits are the pooled features through the dense read-out
    logits, _ = jax.jit(model.apply)(params, xs, lengths=jnp.asarray(LENGTHS))
    head = params["head"]
    np.testing.assert_allclose(np.asarray(logits), want @ np.asarray(head["w"]) + np.asarray(head["b"]), atol=1e-5)


@pytest.mark.parametrize("how", ["last", "mean", "max"])
def test_bidirectional_pooling(how):
    layer = jaxrnn.Bidirectional(jaxrnn.RNN(jaxrnn.LSTM(4)), jaxrnn.RNN(jaxrnn.GRU(4)))
    model = models.SequenceClassifier(layer, num_classes=3, pool=how)
    params = _init(model, 2, F)
    xs = _xs(3)
    pooled, _ = jax.jit(model.features)(params, xs, lengths=jnp.asarray(LENGTHS))
    if how == "last":
        want = _bidirectional_last(layer, params["layer"], xs, LENGTHS)
    else:
        want = _reference_pool(layer, params["layer"], xs, LENGTHS, how)
    np.testing.assert_allclose(np.asarray(pooled), want, atol=2e-6)


def test_pooling_ignores_padding_values_and_handles_time_major():
    layer = jaxrnn.RNN(jaxrnn.LSTM(4))
    model = models.SequenceClassifier(layer, num_classes=2, pool="max")
    params = _init(model, 0, F)
    xs, lengths = _xs(), jnp.asarray(LENGTHS)
    garbage = jnp.where(jnp.arange(T)[:, None] < lengths[..., None, None], xs, 1e3)
    a, _ = model.apply(params, xs, lengths=lengths)
    b, _ = model.apply(params, garbage, lengths=lengths)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

    tm = models.SequenceClassifier(jaxrnn.RNN(layer.cell, time_major=True), num_classes=2, pool="max")
    c, _ = tm.apply(params, jnp.moveaxis(xs, -2, 0), lengths=lengths)
    np.testing.assert_allclose(np.asarray(c), np.asarray(a), atol=1e-6)


def test_pool_without_lengths_and_unknown_layer_fallback():
    ys = jax.random.normal(jax.random.key(0), (2, 5, 3))
    np.testing.assert_allclose(models.pool(ys, None, "mean"), np.asarray(ys).mean(1), atol=1e-6)
    np.testing.assert_allclose(models.pool(ys, None, "max"), np.asarray(ys).max(1))
    # "last" with no known layer: the output at the last valid step
    np.testing.assert_array_equal(models.pool(ys, jnp.array([2, 0]), "last"), np.stack([ys[0, 1], ys[1, 0]]))
    with pytest.raises(ValueError, match="'how' must be one of"):
        models.pool(ys, None, "median")


def test_classifier_loss_predict_and_errors():
    model = models.SequenceClassifier(jaxrnn.RNN(jaxrnn.GRU(5)), num_classes=4, pool="mean")
    params = _init(model, 0, F)
    xs, lengths = _xs(), jnp.asarray(LENGTHS)
    labels = jnp.array([[0, 1, 2], [3, 3, 0]])
    logits, _ = model.apply(params, xs, lengths=lengths)
    nll = -np.take_along_axis(_log_softmax(np.asarray(logits)), np.asarray(labels)[..., None], -1)
    np.testing.assert_allclose(float(model.loss(params, xs, labels, lengths=lengths)), nll.mean(), rtol=1e-5)
    np.testing.assert_array_equal(model.predict(params, xs, lengths=lengths), np.argmax(np.asarray(logits), -1))
    assert hash(model) == hash(models.SequenceClassifier(jaxrnn.RNN(jaxrnn.GRU(5)), num_classes=4, pool="mean"))

    with pytest.raises(ValueError, match=r"'labels' must have shape \(2, 3\)"):
        model.loss(params, xs, labels[0], lengths=lengths)
    with pytest.raises(TypeError, match="'labels' must hold integer"):
        model.loss(params, xs, labels.astype(jnp.float32))
    with pytest.raises(ValueError, match="'pool' must be one of"):
        models.SequenceClassifier(jaxrnn.RNN(jaxrnn.GRU(5)), pool="first")
    with pytest.raises(ValueError, match="'num_classes' must be a positive int"):
        models.SequenceClassifier(jaxrnn.RNN(jaxrnn.GRU(5)), num_classes=0)
    with pytest.raises(TypeError, match="'layer' must be a jaxrnn layer"):
        models.SequenceClassifier(jaxrnn.GRU(5))
    with pytest.raises(ValueError, match=r"'params' must be the dict returned by init"):
        model.apply(params["layer"], xs)


def test_regressor_and_direct_forecaster():
    layer = jaxrnn.RNN(jaxrnn.LSTM(6))
    xs = _xs(batch=(4,))
    reg = models.SequenceRegressor(layer, output_size=2)
    params = _init(reg, 0, F)
    preds, _ = reg.apply(params, xs)
    h = _reference_pool(layer, params["layer"], xs, np.full(4, T), "last")
    np.testing.assert_allclose(np.asarray(preds), h @ np.asarray(params["head"]["w"]) + np.asarray(params["head"]["b"]), atol=1e-5)
    targets = jnp.ones((4, 2))
    np.testing.assert_allclose(float(reg.loss(params, xs, targets)), np.mean((np.asarray(preds) - 1) ** 2), rtol=1e-5)
    with pytest.raises(ValueError, match=r"'targets' must have the predictions' shape \(4, 2\)"):
        reg.loss(params, xs, jnp.ones((4,)))

    fc = models.DirectForecaster(layer, horizon=5, output_size=2)
    params = _init(fc, 1, F)
    future, _ = fc.apply(params, xs)
    assert future.shape == (4, 5, 2)
    h = _reference_pool(layer, params["layer"], xs, np.full(4, T), "last")
    flat = h @ np.asarray(params["head"]["w"]) + np.asarray(params["head"]["b"])
    # step k of the horizon reads columns [2k, 2k + 2) of the read-out
    np.testing.assert_allclose(np.asarray(future[:, 3]), flat[:, 6:8], atol=1e-5)


AR_LAYERS = {
    "gru": jaxrnn.RNN(jaxrnn.GRU(6)),
    "stacked_residual": jaxrnn.Stacked([jaxrnn.RNN(jaxrnn.LSTM(6)), jaxrnn.RNN(jaxrnn.GRU(6))], residual=True),
}


@pytest.mark.parametrize("name", sorted(AR_LAYERS))
def test_autoregressive_forecast_equals_rerunning_on_extended_series(name):
    """The scan-and-step rollout equals appending each prediction and re-running `apply` from scratch."""
    model = models.AutoregressiveForecaster(AR_LAYERS[name], num_features=2)
    params = _init(model, 0, 2)
    xs = np.random.default_rng(1).standard_normal((3, 5, 2)).astype(np.float32)
    lengths = np.array([5, 3, 1])
    horizon = 4
    got = jax.jit(model.forecast, static_argnums=2)(params, xs, horizon, lengths=jnp.asarray(lengths))
    w, b_out = (np.asarray(params["head"][k], np.float64) for k in ("w", "b"))
    for b in range(3):
        seq = np.asarray(xs[b, : lengths[b]], np.float64)
        for k in range(horizon):
            nxt = np_layer(model.layer, params["layer"], seq)[-1] @ w + b_out
            np.testing.assert_allclose(np.asarray(got[b, k]), nxt, atol=2e-5)
            seq = np.concatenate([seq, nxt[None]])


def test_autoregressive_loss_is_masked_one_step_mse():
    model = models.AutoregressiveForecaster(jaxrnn.RNN(jaxrnn.GRU(4)), num_features=2)
    params = _init(model, 0)
    xs = np.random.default_rng(1).standard_normal((3, 5, 2)).astype(np.float32)
    lengths = np.array([5, 2, 1])
    preds, _ = model.apply(params, xs, lengths=jnp.asarray(lengths))
    errs = [np.square(np.asarray(preds[b, t]) - np.asarray(xs[b, t + 1])) for b in range(3) for t in range(lengths[b] - 1)]
    np.testing.assert_allclose(float(model.loss(params, xs, lengths=jnp.asarray(lengths))), np.mean(errs), rtol=1e-5)
    with pytest.raises(ValueError, match="must be causal"):
        models.AutoregressiveForecaster(jaxrnn.Bidirectional(jaxrnn.RNN(jaxrnn.GRU(4))), num_features=2)
    with pytest.raises(ValueError, match="'input_size' must equal num_features 2"):
        _init(model, 0, 3)


def test_tagger_masked_loss_accuracy_predict():
    layer = jaxrnn.Bidirectional(jaxrnn.RNN(jaxrnn.GRU(4)))
    model = models.Tagger(layer, num_tags=3)
    params = _init(model, 0, F)
    xs, lengths = _xs(), jnp.asarray(LENGTHS)
    tags = np.random.default_rng(5).integers(0, 3, (2, 3, T))
    logits, _ = model.apply(params, xs, lengths=lengths)
    lp, lab = _log_softmax(np.asarray(logits)), np.asarray(tags)
    nll, hits = [], []
    for idx in np.ndindex(2, 3):
        for t in range(LENGTHS[idx]):
            nll.append(-lp[idx][t, lab[idx][t]])
            hits.append(np.argmax(lp[idx][t]) == lab[idx][t])
    np.testing.assert_allclose(float(model.loss(params, xs, tags, lengths=lengths)), np.mean(nll), rtol=1e-5)
    np.testing.assert_allclose(float(model.accuracy(params, xs, tags, lengths=lengths)), np.mean(hits), rtol=1e-6)
    pred = np.asarray(model.predict(params, xs, lengths=lengths))
    valid = np.arange(T) < LENGTHS[..., None]
    assert (pred[~valid] == -1).all() and (pred[valid] == np.argmax(lp, -1)[valid]).all()

    # the valid steps' logits equal those of each sequence run alone
    w, b_out = (np.asarray(params["head"][k], np.float64) for k in ("w", "b"))
    for idx in [(0, 1), (1, 2)]:
        n = LENGTHS[idx]
        alone = np_layer(layer, params["layer"], np.asarray(xs[idx])[:n]) @ w + b_out
        np.testing.assert_allclose(np.asarray(logits[idx][:n]), alone, atol=2e-5)


def test_masked_loss_helpers_time_major():
    logits = jax.random.normal(jax.random.key(0), (4, 2, 3))  # [T, B, C]
    labels = jnp.array([[0, 1], [2, 2], [1, 0], [0, 0]])
    lengths = jnp.array([4, 1])
    lp = _log_softmax(np.asarray(logits))
    want = np.mean([-lp[t, b, int(labels[t, b])] for b, n in enumerate([4, 1]) for t in range(n)])
    got = models.sequence_cross_entropy(logits, labels, lengths, time_major=True)
    np.testing.assert_allclose(float(got), want, rtol=1e-6)
    assert float(models.masked_mean(jnp.ones(3), jnp.zeros(3, bool))) == 0.0
