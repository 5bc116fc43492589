"""Chrono initialisation (Tallec & Ollivier 2018): which biases it sets and their distribution. What it does
to the measured gradient profiles and the LSTM's Jacobian spectrum: tests/test_diagnostics_claims.py."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import jaxrnn


def test_lstm_forget_and_input_biases_follow_the_paper():
    H, T_max = 256, 100
    cell = jaxrnn.LSTM(H)
    params = cell.init(jax.random.key(0), input_size=1)
    new = jaxrnn.chrono_init(cell, params, t_max=T_max, key=jax.random.key(1))
    b, b0 = np.asarray(new["b"], np.float64), np.asarray(params["b"])
    b_i, b_f = b[:H], b[H : 2 * H]
    u = np.exp(b_f)  # b_f = log(u), u ~ U[1, T_max - 1]
    assert u.min() >= 1.0 - 1e-5 and u.max() <= T_max - 1 + 1e-3
    sd = (T_max - 2) / np.sqrt(12)  # U[1, 99]: mean 50, sd 28.3; 4 standard errors of tolerance
    assert abs(u.mean() - T_max / 2) < 4 * sd / np.sqrt(H)
    assert abs(u.std() - sd) < 4 * sd / np.sqrt(2 * H)
    np.testing.assert_allclose(b_i, -b_f, rtol=1e-6)
    np.testing.assert_array_equal(b[2 * H :], b0[2 * H :])  # g and o untouched
    for k in ("w_ih", "w_hh"):
        np.testing.assert_array_equal(new[k], params[k])
    # Deterministic in the key.
    again = jaxrnn.chrono_init(cell, params, t_max=T_max, key=jax.random.key(1))
    np.testing.assert_array_equal(again["b"], new["b"])


def test_gru_update_gate_bias_and_composite_layers():
    gru = jaxrnn.GRU(50)
    params = gru.init(jax.random.key(0), input_size=2)
    new = jaxrnn.chrono_init(jaxrnn.RNN(gru), params, t_max=30, key=jax.random.key(1))
    b = np.asarray(new["b"])
    z = 1.0 / (1.0 + np.exp(-b[50:100]))
    # 1 / (1 - z) = 1 + u: memory time constants in [2, t_max].
    assert (1.0 / (1.0 - z)).min() >= 2.0 - 1e-4 and (1.0 / (1.0 - z)).max() <= 30 + 1e-3
    np.testing.assert_array_equal(b[:50], params["b"][:50])  # reset gate untouched
    np.testing.assert_array_equal(b[100:], params["b"][100:])
    np.testing.assert_array_equal(new["b_hn"], params["b_hn"])

    deep = jaxrnn.Stacked(
        [jaxrnn.Bidirectional(jaxrnn.RNN(jaxrnn.LSTM(4))), jaxrnn.RNN(jaxrnn.SimpleRNN(3)), jaxrnn.RNN(jaxrnn.GRU(5))]
    )
    p = deep.init(jax.random.key(2), input_size=2)
    q = jaxrnn.chrono_init(deep, p, t_max=10, key=jax.random.key(3))
    assert jax.tree.structure(q) == jax.tree.structure(p)
    for direction in ("forward", "backward"):
        bf = np.asarray(q["layer_0"][direction]["b"][4:8])
        assert np.all((bf >= 0) & (bf <= np.log(9) + 1e-6))
    assert not np.allclose(q["layer_0"]["forward"]["b"], q["layer_0"]["backward"]["b"])  # independent draws
    np.testing.assert_array_equal(q["layer_1"]["b"], p["layer_1"]["b"])  # SimpleRNN: nothing to set
    assert np.all(np.asarray(q["layer_2"]["b"][5:10]) >= 0)


def test_errors():
    lstm = jaxrnn.LSTM(3)
    params = lstm.init(jax.random.key(0), input_size=2)
    with pytest.raises(TypeError, match="LSTM or GRU"):
        jaxrnn.chrono_init(jaxrnn.SimpleRNN(3), jaxrnn.SimpleRNN(3).init(jax.random.key(0), 2), t_max=10, key=jax.random.key(0))
    with pytest.raises(ValueError, match="'t_max'"):
        jaxrnn.chrono_init(lstm, params, t_max=1, key=jax.random.key(0))
    with pytest.raises(TypeError, match="'key'"):
        jaxrnn.chrono_init(lstm, params, t_max=10, key=0)
    no_bias = jaxrnn.LSTM(3, use_bias=False)
    with pytest.raises(ValueError, match="bias"):
        jaxrnn.chrono_init(no_bias, no_bias.init(jax.random.key(0), 2), t_max=10, key=jax.random.key(0))
