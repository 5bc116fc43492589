"""jaxrnn.summary: parameter counts against the formulas written out by hand, output shapes by hand."""

import re

import jax
import jax.numpy as jnp
import pytest

import jaxrnn
from jaxrnn import models


def _rows(text):
    """{row label: (output shape, param count)} parsed back from the table."""
    rows = {}
    for line in text.splitlines():
        m = re.match(r"^(\s*\S+ \(.+?\))\s{3,}(\(.*?\))\s+([\d,]+)$", line)
        if m:
            rows[m.group(1).strip()] = (m.group(2), int(m.group(3).replace(",", "")))
    return rows


def _total(text):
    return int(re.search(r"Total params: ([\d,]+)", text).group(1).replace(",", ""))


def lstm(i, h):  # four gates, each with input kernel, recurrent kernel and one (merged) bias
    return 4 * h * (i + h + 1)


def gru(i, h):  # three gates, merged biases, plus the separate b_hn of the reset_after form
    return 3 * h * (i + h + 1) + h


def simple(i, h):
    return h * (i + h + 1)


def test_counts_and_shapes_of_a_deep_bidirectional_classifier():
    B, T, I, H1, H2, C = 4, 10, 5, 8, 6, 3
    layer = jaxrnn.Stacked([jaxrnn.Bidirectional(jaxrnn.RNN(jaxrnn.LSTM(H1))), jaxrnn.RNN(jaxrnn.GRU(H2))])
    model = models.SequenceClassifier(layer, num_classes=C, pool="max")
    params = model.init(jax.random.key(0), I)
    text = jaxrnn.summary(model, params, (B, T, I))
    rows = _rows(text)
    assert rows["layer (Stacked)"] == (str((B, T, H2)), 2 * lstm(I, H1) + gru(2 * H1, H2))
    assert rows["layer_0 (Bidirectional[concat])"] == (str((B, T, 2 * H1)), 2 * lstm(I, H1))
    assert rows["forward (RNN[LSTM(8)])"] == (str((B, T, H1)), lstm(I, H1))
    assert rows["backward (RNN[LSTM(8, reverse)])"] == (str((B, T, H1)), lstm(I, H1))
    assert rows["layer_1 (RNN[GRU(6)])"] == (str((B, T, H2)), gru(2 * H1, H2))
    assert rows["pool (Pool[max])"] == (str((B, H2)), 0)
    assert rows["head (Dense)"] == (str((B, C)), H2 * C + C)
    assert _total(text) == 2 * lstm(I, H1) + gru(2 * H1, H2) + H2 * C + C
    # the same table from shapes alone (params=None): init is only traced
    assert jaxrnn.summary(model, None, (B, T, I)) == text


def test_language_model_and_forecaster_rows():
    V, E, H = 11, 8, 16
    lm = models.LanguageModel(jaxrnn.RNN(jaxrnn.SimpleRNN(H)), V, embed_size=E)
    text = jaxrnn.summary(lm, None, (2, 7))
    rows = _rows(text)
    assert rows["embed (Embedding(11, 8))"] == ("(2, 7, 8)", V * E)
    assert rows["layer (RNN[SimpleRNN(16)])"] == ("(2, 7, 16)", simple(E, H))
    assert rows["head (Dense)"] == ("(2, 7, 11)", H * V + V)
    assert _total(text) == V * E + simple(E, H) + H * V + V
    assert "float32" not in text and text.splitlines()[0] == 'Model: "LanguageModel"'

    fc = models.DirectForecaster(jaxrnn.RNN(jaxrnn.LSTM(4)), horizon=6, output_size=2)
    rows = _rows(jaxrnn.summary(fc, None, (3, 20, 2)))
    assert rows["pool (Pool[last])"] == ("(3, 4)", 0)
    assert rows["head (Dense)"] == ("(3, 6, 2)", 4 * 12 + 12)


def test_unknown_layers_become_one_traced_row(capsys):
    seen = []

    class Doubler:
        """A duck-typed layer summary knows nothing about."""

        output_size = 3
        time_major = False

        def init(self, key, input_size):
            return {"w": jnp.ones((input_size, 3))}

        def apply(self, params, xs, **_):
            seen.append(isinstance(xs, jax.core.Tracer))
            return 2 * xs @ params["w"], None

        def initial_carry(self, params, batch_shape=()):
            return None

    layer = jaxrnn.Stacked([Doubler(), jaxrnn.RNN(jaxrnn.GRU(2))])
    text = jaxrnn.summary(layer, None, (5, 4), show=True)
    rows = _rows(text)
    assert rows["layer_0 (Doubler)"] == ("(5, 3)", 4 * 3)
    assert rows["layer_1 (RNN[GRU(2)])"] == ("(5, 2)", gru(3, 2))
    assert seen and all(seen)  # shapes came from tracing only, nothing ran on data
    assert capsys.readouterr().out.strip() == text


def test_summary_errors():
    with pytest.raises(ValueError, match="'input_shape' must be a tuple of non-negative ints"):
        jaxrnn.summary(jaxrnn.RNN(jaxrnn.GRU(2)), None, (2, -1, 3))
    with pytest.raises(TypeError, match="'model' must be a jaxrnn layer or model"):
        jaxrnn.summary(jaxrnn.GRU(2), None, (2, 3, 3))
