"""`jacobian_norms` against brute force: per-step `jax.jacrev` of one `cell.step` (float64), numpy SVD
spectral norms, and the explicit product J_T ... J_1 from `jax.jacrev` of the unrolled T-step map."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import jaxrnn
from jaxrnn.diagnostics import jacobian_norms


def _unrolled(cell, params, xs):
    """carry_0 (flat) -> carry_T (flat) by a Python loop of `cell.step`."""
    flat0, unravel = ravel_pytree(cell.initial_carry(params, ()))

    def run(c):
        carry = unravel(c)
        for t in range(xs.shape[0]):
            carry, _ = cell.step(params, carry, xs[t])
        return ravel_pytree(carry)[0]

    return run, flat0, unravel


@pytest.mark.parametrize(
    "make_cell", [lambda: jaxrnn.SimpleRNN(5, dtype=jnp.float64), lambda: jaxrnn.LSTM(3, dtype=jnp.float64), lambda: jaxrnn.GRU(4, dtype=jnp.float64)],
    ids=["simple", "lstm", "gru"],
)
def test_step_norms_and_lyapunov_match_brute_force(make_cell):
    T = 8
    with jax.enable_x64(True):
        cell = make_cell()
        params = cell.init(jax.random.key(0), input_size=2)
        xs = jax.random.normal(jax.random.key(1), (T, 2), jnp.float64)
        out = jax.jit(lambda p, x: jacobian_norms(cell, p, x))(params, xs)

        run, flat0, unravel = _unrolled(cell, params, xs)
        D = flat0.shape[0]
        hidden_idx = np.asarray(cell.hidden(unravel(jnp.arange(D, dtype=jnp.float64)))).astype(int)
        # Per-step Jacobians at the states of the trajectory, by jacrev of one step.
        step = jax.jit(jax.jacrev(lambda c, x: ravel_pytree(cell.step(params, unravel(c), x)[0])[0]))
        c, carry_norms, hidden_norms, jacs = flat0, [], [], []
        for t in range(T):
            J = np.asarray(step(c, xs[t]))
            jacs.append(J)
            carry_norms.append(np.linalg.svd(J, compute_uv=False)[0])
            hidden_norms.append(np.linalg.svd(J[np.ix_(hidden_idx, hidden_idx)], compute_uv=False)[0])
            c = ravel_pytree(cell.step(params, unravel(c), xs[t])[0])[0]
        product = np.asarray(jax.jacrev(run)(flat0))  # d carry_T / d carry_0 of the unrolled map

    np.testing.assert_allclose(out.carry, carry_norms, rtol=1e-9)
    np.testing.assert_allclose(out.hidden, hidden_norms, rtol=1e-9)
    # The chain rule: the unrolled map's Jacobian is the product of the step Jacobians.
    np.testing.assert_allclose(product, np.linalg.multi_dot(jacs[::-1]) if T > 1 else jacs[0], rtol=1e-9, atol=1e-14)
    # Renormalised tangent growth telescopes: sum_t log||J_t v_{t-1}|| = log||P v_0||, v_0 = ones / sqrt(D).
    v0 = np.ones(D) / np.sqrt(D)
    assert float(out.lyapunov) * T == pytest.approx(np.log(np.linalg.norm(product @ v0)), rel=1e-9)
    assert float(out.log_norm_rate) == pytest.approx(np.mean(np.log(carry_norms)), rel=1e-9)
    # Submultiplicativity: the Lyapunov estimate never exceeds the mean log norm (Pascanu et al.'s bound).
    assert float(out.lyapunov) <= float(out.log_norm_rate) + 1e-12
    if isinstance(cell, (jaxrnn.SimpleRNN, jaxrnn.GRU)):
        np.testing.assert_allclose(out.carry, out.hidden, rtol=1e-12)


def test_lyapunov_converges_to_top_singular_value_growth_independent_of_start():
    """Over a long trajectory the estimate approaches log(s_1(J_T...J_1)) / T from any start vector."""
    T = 150
    with jax.enable_x64(True):
        cell = jaxrnn.SimpleRNN(6, dtype=jnp.float64)
        params = cell.init(jax.random.key(2), input_size=2)
        params = {**params, "w_hh": params["w_hh"] * 0.9}
        xs = jax.random.normal(jax.random.key(3), (2, T, 2), jnp.float64) * 0.5
        fn = jax.jit(lambda p, x, k: jacobian_norms(cell, p, x, key=k).lyapunov)
        from_ones = jax.jit(lambda p, x: jacobian_norms(cell, p, x).lyapunov)(params, xs)
        from_random = fn(params, xs, jax.random.key(4))
        _, flat0, unravel = _unrolled(cell, params, xs[0])
        step = jax.jit(lambda c, x: ravel_pytree(cell.step(params, unravel(c), x)[0])[0])
        jac = jax.jit(jax.jacrev(lambda c, x: ravel_pytree(cell.step(params, unravel(c), x)[0])[0]))
        expected = []
        for b in range(2):  # log s_1(J_T ... J_1) / T, the product formed explicitly
            c, P = flat0, np.eye(flat0.shape[0])
            for t in range(T):
                P = np.asarray(jac(c, xs[b, t])) @ P
                c = step(c, xs[b, t])
            expected.append(np.log(np.linalg.svd(P, compute_uv=False)[0]) / T)
    expected = np.asarray(expected)
    # ||P v|| <= s_1(P) for a unit v: the estimate is a lower bound, short of it by -log|<v, u_1>| / T
    # (u_1 the top right singular vector), a few hundredths here for T = 150.
    for estimate in (np.asarray(from_ones), np.asarray(from_random)):
        assert np.all(estimate <= expected + 1e-9), (estimate, expected)
        assert np.all(estimate >= expected - 0.06), (estimate, expected)
    assert np.all(np.asarray(from_ones) < 0)  # a contracting network: gradients vanish


def test_batch_dims_and_rnn_layer_and_errors():
    cell = jaxrnn.GRU(3)
    params = cell.init(jax.random.key(0), input_size=2)
    xs = jax.random.normal(jax.random.key(1), (2, 3, 5, 2))
    out = jacobian_norms(jaxrnn.RNN(cell), params, xs)
    assert out.carry.shape == (2, 3, 5) and out.lyapunov.shape == (2, 3)
    single = jacobian_norms(cell, params, xs[1, 2])
    np.testing.assert_allclose(out.carry[1, 2], single.carry, rtol=1e-6)
    with pytest.raises(TypeError, match="'cell'"):
        jacobian_norms(jaxrnn.Stacked([jaxrnn.RNN(cell)]), params, xs)
    with pytest.raises(ValueError, match="'xs' must have feature size 2"):
        jacobian_norms(cell, params, jnp.ones((5, 3)))
    with pytest.raises(ValueError, match="'carry'"):
        jacobian_norms(cell, params, xs, carry=jnp.zeros((4,)))
