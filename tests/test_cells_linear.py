"""MinGRU, MinLSTM and LRU against their papers' equations (float64 loops written out here) and listings."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jaxrnn
from jaxrnn.cells.linear import g, log_g


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _g(x):
    return np.where(x >= 0, x + 0.5, _sigmoid(x))


def _random_params(cell, input_size, seed=0):
    """Params with non-zero biases, so every term of the equations is exercised."""
    params = cell.init(jax.random.key(seed), input_size)
    if "b" in params:
        params["b"] = 0.5 * jax.random.normal(jax.random.key(seed + 1), params["b"].shape)
    return params


def _np(params):
    return {k: np.asarray(v, np.float64) for k, v in params.items()}


def min_gru_reference(p, xs, h0, log_space):
    """Feng et al. (2024), minGRU: z = sigmoid(Linear_z x), h~ = [g](Linear_h x), h = (1 - z) h + z h~."""
    H = h0.shape[-1]
    h, out = h0, []
    for x in xs:
        pre = x @ p["w_ih"] + p["b"]
        z, h_tilde = _sigmoid(pre[:, :H]), pre[:, H:]
        if log_space:
            h_tilde = _g(h_tilde)
        h = (1 - z) * h + z * h_tilde
        out.append(h)
    return np.stack(out), h


def min_lstm_reference(p, xs, h0, log_space):
    """Feng et al. (2024), minLSTM: f' = f / (f + i), i' = i / (f + i), h = f' h + i' h~."""
    H = h0.shape[-1]
    h, out = h0, []
    for x in xs:
        pre = x @ p["w_ih"] + p["b"]
        f, i, h_tilde = _sigmoid(pre[:, :H]), _sigmoid(pre[:, H : 2 * H]), pre[:, 2 * H :]
        if log_space:
            h_tilde = _g(h_tilde)
        h = f / (f + i) * h + i / (f + i) * h_tilde
        out.append(h)
    return np.stack(out), h


def _run(layer, params, xs, carry):
    return jax.jit(layer.apply)(params, xs, carry=carry)


@pytest.mark.parametrize("log_space", [True, False])
@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_min_cells_match_the_papers_equations(kind, log_space):
    method = "sequential" if log_space else "parallel"  # test_parallel.py: each method equals the other
    cell = (jaxrnn.MinGRU if kind == "gru" else jaxrnn.MinLSTM)(5, log_space=log_space)
    reference = min_gru_reference if kind == "gru" else min_lstm_reference
    params = _random_params(cell, 3)
    xs = np.random.default_rng(0).normal(size=(12, 2, 3))  # time-major
    h0 = np.abs(np.random.default_rng(1).normal(size=(2, 5)))
    layer = jaxrnn.RNN(cell, time_major=True, method=method)
    ys, h = _run(layer, params, jnp.asarray(xs, jnp.float32), jnp.asarray(h0, jnp.float32))
    ys_ref, h_ref = reference(_np(params), xs, h0, log_space)
    np.testing.assert_allclose(ys, ys_ref, rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(h, h_ref, rtol=2e-5, atol=2e-6)


def _torch_parallel_scan_log(log_coeffs, log_values):
    """The log-space scan of Feng et al. (2024), their Listing (Heinsen's cumsum + logcumsumexp form)."""
    a_star = torch.nn.functional.pad(torch.cumsum(log_coeffs, dim=1), (0, 0, 1, 0))
    log_h0_plus_b_star = torch.logcumsumexp(log_values - a_star, dim=1)
    log_h = a_star + log_h0_plus_b_star
    return torch.exp(log_h)[:, 1:]


def _torch_log_g(x):
    return torch.where(x >= 0, (torch.nn.functional.relu(x) + 0.5).log(), -torch.nn.functional.softplus(-x))


def _torch_log_coefficients(kind, pre, hidden):
    """The log-space coefficients of the paper's parallel minGRU / minLSTM listings."""
    softplus = torch.nn.functional.softplus
    if kind == "gru":
        k, h_lin = pre[..., :hidden], pre[..., hidden:]
        return -softplus(k), -softplus(-k) + _torch_log_g(h_lin)  # log(1 - z), log z + log g(h~)
    k_f, k_i, h_lin = pre[..., :hidden], pre[..., hidden : 2 * hidden], pre[..., 2 * hidden :]
    diff = softplus(-k_f) - softplus(-k_i)
    return -softplus(diff), -softplus(-diff) + _torch_log_g(h_lin)  # log f', log i' + log g(h~)


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_log_space_min_cells_match_the_papers_torch_listing(kind):
    cell = (jaxrnn.MinGRU if kind == "gru" else jaxrnn.MinLSTM)(6)
    params = _random_params(cell, 4, seed=3)
    xs = np.random.default_rng(2).normal(size=(3, 40, 4))
    h0 = np.abs(np.random.default_rng(3).normal(size=(3, 6))) + 0.1
    p = {k: torch.tensor(np.asarray(v, np.float64)) for k, v in params.items()}
    log_coeffs, log_b = _torch_log_coefficients(kind, torch.tensor(xs) @ p["w_ih"] + p["b"], 6)
    log_values = torch.cat([torch.tensor(h0).log()[:, None], log_b], dim=1)
    expected = _torch_parallel_scan_log(log_coeffs, log_values).numpy()
    ys, _ = _run(jaxrnn.RNN(cell, method="parallel"), params, jnp.asarray(xs, jnp.float32), jnp.asarray(h0, jnp.float32))
    np.testing.assert_allclose(ys, expected, rtol=2e-5, atol=1e-6)


def test_g_and_log_g_are_the_papers_functions():
    x = jnp.array([-30.0, -2.0, -1e-3, 0.0, 1e-3, 2.0, 30.0])
    np.testing.assert_allclose(g(x), _g(np.asarray(x, np.float64)), rtol=1e-6)
    np.testing.assert_allclose(log_g(x), np.log(_g(np.asarray(x, np.float64))), rtol=1e-6, atol=1e-7)
    assert np.all(np.isfinite(jax.vmap(jax.grad(log_g))(x)))


def lru_reference(p, xs, x0):
    """Orvieto et al. (2023): x_k = lambda x_{k-1} + gamma (B u_k), y_k = Re(C x_k) + D u_k, in complex128."""
    lam = np.exp(-np.exp(p["nu_log"]) + 1j * np.exp(p["theta_log"]))
    gamma = np.exp(p["gamma_log"])
    N = lam.shape[0]
    B = p["w_ih"][:, :N] + 1j * p["w_ih"][:, N:]  # [I, N]: u @ B is B u
    C = p["c_re"] + 1j * p["c_im"]  # [N, H]
    x, ys = x0, []
    for u in xs:
        x = lam * x + gamma * (u @ B)
        ys.append((x @ C).real + u @ p["w_skip"])
    return np.stack(ys), x


@pytest.mark.parametrize("method", ["sequential", "parallel"])
def test_lru_matches_the_papers_equations(method):
    cell = jaxrnn.LRU(5, state_size=7, r_min=0.5, r_max=0.99, max_phase=math.pi)
    params = cell.init(jax.random.key(0), 3)
    xs = np.random.default_rng(0).normal(size=(20, 2, 3))
    x0 = np.random.default_rng(1).normal(size=(2, 7)) + 1j * np.random.default_rng(2).normal(size=(2, 7))
    carry = jaxrnn.LRUState(h=jnp.zeros((2, 5)), x=jnp.asarray(x0, jnp.complex64))
    ys, final = _run(jaxrnn.RNN(cell, time_major=True, method=method), params, jnp.asarray(xs, jnp.float32), carry)
    ys_ref, x_ref = lru_reference(_np(params), xs, x0)
    np.testing.assert_allclose(ys, ys_ref, rtol=1e-5, atol=2e-5)
    np.testing.assert_allclose(final.x, x_ref, rtol=1e-5, atol=2e-5)
    np.testing.assert_allclose(final.h, ys_ref[-1], rtol=1e-5, atol=2e-5)
    assert final.x.dtype == jnp.complex64 and final.h.dtype == jnp.float32


def test_lru_initialisation_follows_the_paper():
    cell = jaxrnn.LRU(4, state_size=4000, r_min=0.4, r_max=0.9, max_phase=0.5)
    p = cell.init(jax.random.key(1), 8)
    modulus = np.abs(np.asarray(cell.eigenvalues(p)))
    phase = np.exp(np.asarray(p["theta_log"]))
    assert modulus.min() >= 0.4 - 1e-6 and modulus.max() <= 0.9 + 1e-6
    assert phase.min() >= 0 and phase.max() <= 0.5 + 1e-6
    # uniform on the ring: |lambda|^2 is uniform on [r_min^2, r_max^2], so its mean is the midpoint
    assert abs(np.mean(modulus**2) - (0.4**2 + 0.9**2) / 2) < 0.01
    np.testing.assert_allclose(np.exp(np.asarray(p["gamma_log"])), np.sqrt(1 - modulus**2), rtol=1e-5)
    assert abs(np.std(np.asarray(p["w_ih"])) - 1 / math.sqrt(2 * 8)) < 0.01  # B: N(0, 1 / (2 I))
    assert abs(np.std(np.asarray(p["c_re"])) - 1 / math.sqrt(4000)) < 0.002  # C: N(0, 1 / N)


def test_lru_keeps_the_stability_of_its_parametrisation():
    cell = jaxrnn.LRU(3)
    p = cell.init(jax.random.key(0), 2)
    p = {**p, "nu_log": jnp.array([-8.0, 0.0, 3.0])}  # any nu gives |lambda| = exp(-exp(nu)) < 1
    np.testing.assert_allclose(jnp.abs(cell.eigenvalues(p)), np.exp(-np.exp([-8.0, 0.0, 3.0])), rtol=1e-6)
    assert float(jnp.abs(cell.eigenvalues(p)).max()) < 1.0


@pytest.mark.parametrize(
    "cell", [jaxrnn.MinGRU(4), jaxrnn.MinLSTM(4, log_space=False), jaxrnn.LRU(4, state_size=3)], ids=type
)
def test_step_is_recur_of_project_and_carries_have_their_dtypes(cell):
    params = cell.init(jax.random.key(0), 3)
    carry = cell.initial_carry(params, (2,))
    x = jax.random.normal(jax.random.key(1), (2, 3))
    via_step = cell.step(params, carry, x)
    via_recur = cell.recur(params, carry, cell.project(params, x))
    for a, b in zip(jax.tree.leaves(via_step), jax.tree.leaves(via_recur)):
        np.testing.assert_array_equal(a, b)
    assert cell.check_params("test", params) == 3
    assert cell.hidden(carry).shape == (2, 4)


def test_min_cell_parameter_layout():
    assert {k: v.shape for k, v in jaxrnn.MinGRU(4).init(jax.random.key(0), 3).items()} == {"w_ih": (3, 8), "b": (8,)}
    assert {k: v.shape for k, v in jaxrnn.MinLSTM(4, use_bias=False).init(jax.random.key(0), 3).items()} == {
        "w_ih": (3, 12)
    }


def test_linear_cells_reject_bad_arguments():
    with pytest.raises(TypeError, match="'log_space' must be a bool"):
        jaxrnn.MinGRU(4, log_space=1)
    with pytest.raises(ValueError, match="'hidden_size' must be a positive int"):
        jaxrnn.MinLSTM(0)
    with pytest.raises(ValueError, match="r_min < r_max"):
        jaxrnn.LRU(4, r_min=0.9, r_max=0.5)
    with pytest.raises(ValueError, match="'state_size' must be a positive int"):
        jaxrnn.LRU(4, state_size=0)
    with pytest.raises(ValueError, match="'max_phase' must be positive"):
        jaxrnn.LRU(4, max_phase=0.0)
    with pytest.raises(TypeError):
        jaxrnn.LRU(4, use_bias=True)  # the LRU has no bias
    with pytest.raises(ValueError, match="'input_size' must be a positive int"):
        jaxrnn.MinGRU(4).init(jax.random.key(0), 0)
    with pytest.raises(ValueError, match="'recurrent_dropout' must be 0.0 for MinGRU"):
        jaxrnn.RNN(jaxrnn.MinGRU(4), recurrent_dropout=0.2)
    cell = jaxrnn.MinGRU(4)
    params = cell.init(jax.random.key(0), 3)
    with pytest.raises(ValueError, match="recurrent dropout does not apply"):
        cell.recur(params, jnp.zeros((4,)), jnp.zeros((8,)), recurrent_mask=jnp.ones((4,)))
