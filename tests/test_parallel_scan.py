"""The associative-scan linear recurrences against float64 Python loops of ``h_t = A_t h_{t-1} + b_t``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrnn import parallel
from jaxrnn.parallel import logaddexp

# jitted: eagerly, every level of an associative scan compiles its own small ops
linear_recurrence = jax.jit(parallel.linear_recurrence, static_argnames="reverse")
log_linear_recurrence = jax.jit(parallel.log_linear_recurrence, static_argnames="reverse")
matrix_recurrence = jax.jit(parallel.matrix_recurrence, static_argnames="reverse")


def _loop(a, b, h0, reverse=False, matmul=False):
    order = range(len(a) - 1, -1, -1) if reverse else range(len(a))
    h, out = h0, [None] * len(a)
    for t in order:
        h = (a[t] @ h[..., None])[..., 0] + b[t] if matmul else a[t] * h + b[t]
        out[t] = h
    return np.stack(out)


@pytest.mark.parametrize("reverse", [False, True])
def test_linear_recurrence_is_the_loop(reverse):
    rng = np.random.default_rng(0)
    a, b, h0 = rng.uniform(-1.2, 1.2, (33, 2, 3)), rng.normal(size=(33, 2, 3)), rng.normal(size=(2, 3))
    got = linear_recurrence(jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32), jnp.asarray(h0, jnp.float32), reverse=reverse)
    np.testing.assert_allclose(got, _loop(a, b, h0, reverse), rtol=1e-4, atol=1e-5)
    no_h0 = linear_recurrence(jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32), reverse=reverse)
    np.testing.assert_allclose(no_h0, _loop(a, b, np.zeros((2, 3)), reverse), rtol=1e-4, atol=1e-5)


def test_complex_linear_recurrence_is_the_loop():
    rng = np.random.default_rng(1)
    a = 0.95 * np.exp(1j * rng.uniform(0, 6.3, (20, 4)))
    b = rng.normal(size=(20, 4)) + 1j * rng.normal(size=(20, 4))
    got = linear_recurrence(jnp.asarray(a, jnp.complex64), jnp.asarray(b, jnp.complex64))
    np.testing.assert_allclose(got, _loop(a, b, np.zeros(4)), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("reverse", [False, True])
def test_log_linear_recurrence_is_the_loop_for_any_sign_of_h0(reverse):
    rng = np.random.default_rng(2)
    a, b, h0 = rng.uniform(0.01, 1.0, (40, 5)), rng.uniform(0.01, 3.0, (40, 5)), rng.normal(size=5)
    got = log_linear_recurrence(
        jnp.log(jnp.asarray(a, jnp.float32)), jnp.log(jnp.asarray(b, jnp.float32)), jnp.asarray(h0, jnp.float32), reverse=reverse
    )
    np.testing.assert_allclose(got, _loop(a, b, h0, reverse), rtol=1e-5, atol=1e-6)


def test_log_space_keeps_float32_precision_over_long_sequences():
    """T = 8192 of a slowly forgetting recurrence: within 1e-5 of float64 relative (the cumsum /
    logcumsumexp form subtracts two cumulative sums of size ~T and loses ~T * eps)."""
    rng = np.random.default_rng(3)
    a, b = rng.uniform(0.3, 0.999, (8192, 4)), rng.uniform(0.01, 1.0, (8192, 4))
    expected = _loop(a, b, np.zeros(4))
    log_a, log_b = jnp.log(jnp.asarray(a, jnp.float32)), jnp.log(jnp.asarray(b, jnp.float32))
    np.testing.assert_allclose(log_linear_recurrence(log_a, log_b), expected, rtol=1e-5)
    a_star = jnp.cumsum(log_a, axis=0)  # Heinsen (2023) / Feng et al.'s listing, for contrast
    heinsen = jax.jit(lambda a_star, lb: jnp.exp(a_star + jax.lax.cumlogsumexp(lb - a_star, axis=0)))(a_star, log_b)
    assert np.max(np.abs(np.asarray(heinsen) / expected - 1)) > 1e-4


def test_identity_steps_of_the_log_scan_have_finite_zero_gradients():
    log_a = jnp.array([-0.5, 0.0, 0.0, -0.1])
    log_b = jnp.array([0.3, -jnp.inf, -jnp.inf, 0.2])  # steps 1, 2 keep the state

    def last(la, lb):
        return parallel.log_linear_recurrence(la, lb, jnp.asarray(0.0))[-1]

    value = last(log_a, log_b)
    np.testing.assert_allclose(value, np.exp(-0.1) * np.exp(0.3) + np.exp(0.2), rtol=1e-6)
    grads = jax.jit(jax.grad(last, argnums=(0, 1)))(log_a, log_b)
    assert all(np.all(np.isfinite(g)) for g in grads)
    np.testing.assert_allclose(grads[1], [np.exp(-0.1) * np.exp(0.3), 0.0, 0.0, np.exp(0.2)], rtol=1e-6)
    assert float(logaddexp(jnp.asarray(-jnp.inf), jnp.asarray(-jnp.inf))) == -np.inf
    np.testing.assert_allclose(logaddexp(jnp.asarray(1.0), jnp.asarray(2.0)), np.logaddexp(1.0, 2.0), rtol=1e-6)


@pytest.mark.parametrize("reverse", [False, True])
def test_matrix_recurrence_is_the_loop(reverse):
    rng = np.random.default_rng(4)
    a, b, h0 = rng.normal(size=(17, 2, 3, 3)) / 2, rng.normal(size=(17, 2, 3)), rng.normal(size=(2, 3))
    got = matrix_recurrence(jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32), jnp.asarray(h0, jnp.float32), reverse=reverse)
    np.testing.assert_allclose(got, _loop(a, b, h0, reverse, matmul=True), rtol=1e-4, atol=1e-5)


def test_linear_recurrence_gradients_match_the_loops():
    rng = np.random.default_rng(5)
    values = (rng.uniform(-1, 1, (9, 3)), rng.normal(size=(9, 3)), rng.normal(size=3))
    with jax.enable_x64(True):
        a, b, h0 = (jnp.asarray(v, jnp.float64) for v in values)
        w = jnp.asarray(rng.normal(size=(9, 3)))

        def loop(a, b, h0):
            h, total = h0, 0.0
            for t in range(9):
                h = a[t] * h + b[t]
                total = total + jnp.sum(w[t] * h)
            return total

        scanned = lambda a, b, h0: jnp.sum(w * parallel.linear_recurrence(a, b, h0))
        got_grads = jax.jit(jax.grad(scanned, (0, 1, 2)))(a, b, h0)
        for got, want in zip(got_grads, jax.jit(jax.grad(loop, (0, 1, 2)))(a, b, h0)):
            np.testing.assert_allclose(got, want, rtol=1e-12)
