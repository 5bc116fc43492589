"""Smoke tests of the four model examples at tiny size, plus checks of their data and helpers.

Each example runs end to end (train, evaluate, plot) in a few steps; its bundled data is checked
against facts about the data set, and its evaluation helpers against independent computations.
"""

import importlib.util
import math
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
from jaxrnn import models

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _load(name):
    sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check_metrics(metrics, keys):
    assert set(keys) <= set(metrics)
    assert all(math.isfinite(v) for v in metrics.values()), metrics


def test_sunspot_data_and_ar_baseline():
    ex = _load("sunspots_forecast")
    years, x = ex.load_sunspots()
    assert len(years) == 309 and (np.diff(years) == 1).all() and years[0] == 1700 and years[-1] == 2008
    assert x[0] == 5.0 and x[-1] == 2.9 and years[np.argmax(x)] == 1957 and x.max() == 190.2

    # least squares recovers a known AR(2) process, and the recursive forecast follows its recursion
    rng = np.random.default_rng(0)
    s = [0.0, 0.0]
    for _ in range(3000):
        s.append(0.5 + 1.2 * s[-1] - 0.5 * s[-2] + 0.1 * rng.standard_normal())
    coef = ex.fit_ar(np.array(s), 2)
    np.testing.assert_allclose(coef, [0.5, 1.2, -0.5], atol=0.03)
    f = ex.ar_forecast(np.array([0.5, 1.2, -0.5]), np.array([1.0, 2.0]), 2)
    np.testing.assert_allclose(f, [0.5 + 2.4 - 0.5, 0.5 + 1.2 * 2.4 - 1.0])


def test_sunspots_example_runs(tmp_path):
    ex = _load("sunspots_forecast")
    metrics = ex.main(["--out", str(tmp_path), "--steps", "3", "--hidden", "4", "--window", "20", "--max-p", "4"])
    _check_metrics(metrics, ["rmse_1step_persistence", "rmse_1step_ar", "rmse_1step_gru", "rmse_multi_gru_direct"])
    years, x = ex.load_sunspots()
    test = years >= ex.TEST_START
    persistence = np.sqrt(np.mean((x[test] - x[np.flatnonzero(test) - 1]) ** 2))
    assert metrics["rmse_1step_persistence"] == pytest.approx(persistence)
    assert (tmp_path / "sunspots_forecast.png").stat().st_size > 10_000


def test_digits_data_and_example_runs(tmp_path):
    ex = _load("digits_rowwise")
    images, labels = ex.load_digits()
    assert images.shape == (1797, 8, 8) and images.min() == 0.0 and images.max() == 1.0
    counts = np.bincount(labels)
    assert len(counts) == 10 and counts.min() >= 170 and counts.sum() == 1797
    assert (images[:, :, 0].mean() < 0.05) and (images[:, 3:5, 3:5].mean() > 0.3)  # ink in the middle, not the rim
    metrics = ex.main(["--out", str(tmp_path), "--steps", "3", "--hidden", "4", "--mlp-hidden", "4"])
    _check_metrics(metrics, ["test_accuracy_gru_rows", "test_accuracy_logistic_regression", "test_accuracy_mlp"])
    assert metrics["n_test"] == 449
    assert (tmp_path / "digits_rowwise.png").stat().st_size > 10_000


def test_tagging_data_follows_the_rule_and_example_runs(tmp_path):
    ex = _load("bidirectional_tagging")
    xs, tags, lengths = ex.make_data(50, np.random.default_rng(1))
    for x, tag, n in zip(xs[..., 0], tags, lengths):
        assert (x[n:] == 0).all() and (tag[n:] == 0).all()
        for t in range(n):
            up = t == 0 or x[t] > x[t - 1]
            down = t == n - 1 or x[t] > x[t + 1]
            assert tag[t] == 2 * up + down
    metrics = ex.main(["--out", str(tmp_path), "--steps", "3", "--hidden", "4", "--n-train", "64", "--n-test", "32"])
    _check_metrics(metrics, ["token_accuracy_bidirectional", "token_accuracy_unidirectional"])
    assert (tmp_path / "bidirectional_tagging.png").stat().st_size > 10_000


def test_char_lm_text_bits_and_example_runs(tmp_path):
    ex = _load("char_lm")
    text = ex.load_text()
    assert len(text) == 148480 and "\r" not in text
    assert text.split()[:4] == ["ALICE'S", "ADVENTURES", "IN", "WONDERLAND"] and text.rstrip().endswith("THE END")
    vocab = ex.Vocabulary(text)
    assert vocab.decode(vocab.encode("Alice")) == "Alice"

    # chunked streaming evaluation == the loss over each whole stream at once
    model = models.LanguageModel(jaxrnn.RNN(jaxrnn.GRU(8)), len(vocab), embed_size=4)
    params = model.init(jax.random.key(0))
    ids = vocab.encode(text[:64])
    bits = ex.held_out_bits(model, params, ids, streams=2, chunk=7)
    whole = float(model.loss(params, jnp.asarray(ids.reshape(2, 32)))) / math.log(2)
    assert bits == pytest.approx(whole, rel=1e-5)
    # the unigram baseline, written out
    train, held = vocab.encode("aab"), vocab.encode("ab")
    p_a, p_b = 3 / (3 + len(vocab)), 2 / (3 + len(vocab))
    assert ex.unigram_bits(train, held, len(vocab)) == pytest.approx(-(np.log2(p_a) + np.log2(p_b)) / 2)

    metrics = ex.main(["--out", str(tmp_path), "--steps", "3", "--hidden", "8", "--embed", "4", "--seq", "20",
                       "--sample-len", "10"])
    _check_metrics(metrics, ["held_out_bpc_lstm", "held_out_bpc_unigram"])
    assert 4.0 < metrics["held_out_bpc_unigram"] < 5.0
    samples = (tmp_path / "samples.txt").read_text()
    assert samples.count("Alice was ") == 3
    assert (tmp_path / "char_lm.png").stat().st_size > 10_000
