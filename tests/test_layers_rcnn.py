"""RCNN pieces against PyTorch: `Conv1D` (torch conv1d), Conv1D + LSTM (torch conv1d + nn.LSTM), and
Liang & Hu's `RecurrentConv` (torch conv2d + ReLU + LocalResponseNorm, iterated)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import jaxrnn
from jaxrnn.layers import local_response_norm
from tests.families_util import normal, random_params

B, T, I, C = 3, 9, 2, 4
ACT = {"relu": torch.relu, "tanh": torch.tanh, None: lambda a: a}


def _torch_conv1d(xs: np.ndarray, params: dict, *, padding: str, dilation: int, activation) -> torch.Tensor:
    w = torch.tensor(np.asarray(params["w"]), dtype=torch.float64).permute(2, 1, 0)  # [O, I, K]
    span = (w.shape[-1] - 1) * dilation
    pad = (span, 0) if padding == "causal" else (span // 2, span - span // 2)
    x = F.pad(torch.tensor(xs, dtype=torch.float64).transpose(1, 2), pad)
    b = torch.tensor(np.asarray(params["b"]), dtype=torch.float64)
    return ACT[activation](F.conv1d(x, w, b, dilation=dilation)).transpose(1, 2)


@pytest.mark.parametrize(
    "padding, dilation, kernel, activation", [("causal", 1, 3, "relu"), ("causal", 2, 3, "tanh"), ("same", 1, 4, None)]
)
def test_conv1d_matches_torch(padding, dilation, kernel, activation):
    layer = jaxrnn.Conv1D(C, kernel, padding=padding, dilation=dilation, activation=activation)
    params = random_params(layer, I, seed=1)
    xs = normal((B, T, I), 2)
    ys, carry = layer.apply(params, jnp.asarray(xs))
    assert carry == () and ys.shape == (B, T, C)
    np.testing.assert_allclose(ys, _torch_conv1d(xs, params, padding=padding, dilation=dilation, activation=activation), atol=2e-6)
    tm, _ = jaxrnn.Conv1D(C, kernel, padding=padding, dilation=dilation, activation=activation, time_major=True).apply(
        params, jnp.asarray(xs.transpose(1, 0, 2))
    )
    np.testing.assert_allclose(tm.transpose(1, 0, 2), ys, atol=1e-6)


def test_conv1d_causal_outputs_depend_only_on_the_past():
    layer = jaxrnn.Conv1D(C, 3, dilation=2)
    params = random_params(layer, I, seed=3)
    xs = jnp.asarray(normal((1, T, I), 4))
    jac = jax.jacrev(lambda x: layer.apply(params, x)[0])(xs)[0, :, :, 0, :, :]  # [T_out, C, T_in, I]
    support = np.asarray(jnp.abs(jac).sum(axis=(1, 3)) > 0)
    expected = np.array([[s in (t, t - 2, t - 4) for s in range(T)] for t in range(T)])
    np.testing.assert_array_equal(support, expected)


def test_conv1d_lengths_keep_padding_out():
    layer = jaxrnn.Conv1D(C, 3, padding="same")
    params = random_params(layer, I, seed=5)
    xs = normal((2, T, I), 6)
    xs[1, 5:] = 100.0  # garbage in the padding must not reach step 4 through the centred window
    ys, _ = layer.apply(params, jnp.asarray(xs), lengths=jnp.array([T, 5]))
    clean = xs.copy()
    clean[1, 5:] = 0.0
    ref = _torch_conv1d(clean, params, padding="same", dilation=1, activation="relu").numpy()
    np.testing.assert_allclose(ys[:, :5], ref[:, :5], atol=2e-6)
    np.testing.assert_array_equal(ys[1, 5:], 0.0)


def test_rcnn_equals_torch_conv1d_then_lstm():
    torch.manual_seed(0)
    conv = jaxrnn.Conv1D(C, 3)
    lstm = torch.nn.LSTM(C, 5, batch_first=True)
    lstm_layer, lstm_params = jaxrnn.interop.from_torch(lstm)
    rcnn = jaxrnn.Stacked([conv, lstm_layer])
    params = {"layer_0": random_params(conv, I, seed=7), "layer_1": lstm_params}
    xs = normal((B, T, I), 8)
    ys, (conv_carry, (h, c)) = rcnn.apply(params, jnp.asarray(xs))
    with torch.no_grad():
        feats = _torch_conv1d(xs, params["layer_0"], padding="causal", dilation=1, activation="relu").float()
        ref, (h_n, _) = lstm(feats)
    np.testing.assert_allclose(ys, ref.numpy(), atol=2e-6)
    np.testing.assert_allclose(h, h_n[0].numpy(), atol=2e-6)


@pytest.mark.parametrize("size", [1, 2, 5])
def test_local_response_norm_matches_torch(size):
    x = normal((2, 3, 4, 9), 9) * 3
    ref = torch.nn.LocalResponseNorm(size, alpha=1e-3, beta=0.75, k=1.0)(torch.tensor(x, dtype=torch.float64).movedim(-1, 1))
    np.testing.assert_allclose(local_response_norm(jnp.asarray(x), size), ref.movedim(1, -1).numpy(), rtol=1e-5)


def test_recurrent_conv_matches_torch_iterations():
    features = 16  # LRN window 16 // 8 + 1 = 3
    rcl = jaxrnn.RecurrentConv(features, kernel_size=(3, 3), iterations=3)
    params = random_params(rcl, C, seed=10, scale=0.2)
    x = normal((2, 6, 5, C), 11)
    y = rcl.apply(params, jnp.asarray(x))

    to_t = lambda a: torch.tensor(np.asarray(a), dtype=torch.float64)  # noqa: E731
    w_f, w_r = to_t(params["w_ih"]).permute(3, 2, 0, 1), to_t(params["w_hh"]).permute(3, 2, 0, 1)
    u = F.conv2d(to_t(x).movedim(-1, 1), w_f, to_t(params["b"]), padding=1)
    lrn = torch.nn.LocalResponseNorm(3, alpha=1e-3, beta=0.75, k=1.0)
    state = lrn(torch.relu(u))  # x(0): feed-forward only
    for _ in range(3):
        state = lrn(torch.relu(u + F.conv2d(state, w_r, padding=1)))
    assert y.shape == (2, 6, 5, features)
    np.testing.assert_allclose(y, state.movedim(1, -1).numpy(), rtol=1e-5, atol=1e-5)  # float32 vs float64
    assert jaxrnn.RecurrentConv(features, kernel_size=(3, 3), iterations=0, lrn=False).apply(params, jnp.asarray(x)).min() >= 0


def test_bad_rcnn_inputs_name_the_argument():
    with pytest.raises(ValueError, match="'padding'"):
        jaxrnn.Conv1D(C, 3, padding="valid")
    with pytest.raises(ValueError, match="'kernel_size'"):
        jaxrnn.Conv1D(C, 0)
    layer = jaxrnn.Conv1D(C, 3)
    params = random_params(layer, I)
    with pytest.raises(ValueError, match="'xs'.*feature size 2"):
        layer.apply(params, jnp.ones((B, T, 3)))
    with pytest.raises(ValueError, match="'carry'"):
        layer.apply(params, jnp.ones((B, T, I)), carry=jnp.zeros(3))
    with pytest.raises(ValueError, match="'iterations'"):
        jaxrnn.RecurrentConv(4, kernel_size=(3, 3), iterations=-1)
    rcl = jaxrnn.RecurrentConv(4, kernel_size=(3, 3))
    with pytest.raises(ValueError, match="'x'.*feature size"):
        rcl.apply(random_params(rcl, 3), jnp.ones((1, 5, 5, 2)))
