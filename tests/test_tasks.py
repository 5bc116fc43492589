"""The adding problem and the copy-memory task against their definitions, written out in numpy."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrnn.tasks import AddingProblem, CopyMemory, adding_problem, copy_memory


def test_adding_problem_definition():
    B, T = 512, 20
    batch = adding_problem(jax.random.key(0), B, T)
    xs, y = np.asarray(batch.xs), np.asarray(batch.targets)
    assert xs.shape == (B, T, 2) and y.shape == (B, 1) and batch.lengths is None
    values, markers = xs[..., 0], xs[..., 1]
    assert values.min() >= 0.0 and values.max() < 1.0
    assert set(np.unique(markers)) == {0.0, 1.0}
    np.testing.assert_array_equal(markers[:, : T // 2].sum(1), 1)  # one marker in each half
    np.testing.assert_array_equal(markers[:, T // 2 :].sum(1), 1)
    for b in range(B):
        i, j = np.flatnonzero(markers[b])
        assert y[b, 0] == pytest.approx(values[b, i] + values[b, j], rel=1e-6)
    # Marker positions are uniform over each half (chi-square-free check: every position is used).
    assert len(set(np.argmax(markers[:, : T // 2], 1))) == T // 2
    # Same under jit, and a pure function of the key.
    jitted = jax.jit(adding_problem, static_argnums=(1, 2))(jax.random.key(0), B, T)
    np.testing.assert_array_equal(jitted.xs, batch.xs)


def test_adding_problem_baseline_is_one_sixth():
    task = AddingProblem(50)
    batch = task.sample(jax.random.key(1), 20000)
    mse = float(task.loss(jnp.ones((20000, 1)), batch))
    # Var(U1 + U2) = 1/6; the sample variance of (S - 1)^2 has sd ~ 0.197 / sqrt(n).
    assert abs(mse - 1 / 6) < 4 * 0.197 / math.sqrt(20000)
    assert task.baseline == pytest.approx(1 / 6)


def test_copy_memory_definition_and_baseline():
    delay, B = 30, 64
    batch = copy_memory(jax.random.key(2), B, delay)
    L = delay + 20
    assert batch.xs.shape == (B, L, 10) and batch.targets.shape == (B, L) and batch.targets.dtype == jnp.int32
    ids = np.argmax(np.asarray(batch.xs), -1)
    np.testing.assert_array_equal(np.asarray(batch.xs).sum(-1), 1.0)  # one-hot
    symbols = ids[:, :10]
    assert symbols.min() >= 1 and symbols.max() <= 8
    np.testing.assert_array_equal(ids[:, 10 : delay + 9], 0)  # delay - 1 blanks
    np.testing.assert_array_equal(ids[:, delay + 9], 9)  # the delimiter
    np.testing.assert_array_equal(ids[:, delay + 10 :], 0)
    targets = np.asarray(batch.targets)
    np.testing.assert_array_equal(targets[:, : delay + 10], 0)
    np.testing.assert_array_equal(targets[:, delay + 10 :], symbols)

    task = CopyMemory(delay)
    assert task.length == L and task.input_size == 10 and task.output_size == 9
    assert task.baseline == pytest.approx(10 * math.log(8) / (delay + 20))
    # The baseline strategy's cross-entropy, computed by the task's loss: blank with certainty, then uniform.
    blank = np.full(9, -1e9)
    blank[0] = 0.0
    uniform = np.full(9, 0.0)
    uniform[0] = -1e9
    logits = np.where(np.arange(L)[:, None] < delay + 10, blank, uniform)
    loss = float(task.loss(jnp.broadcast_to(jnp.asarray(logits, jnp.float32), (B, L, 9)), batch))
    assert loss == pytest.approx(task.baseline, rel=1e-5)


def test_streams_are_pure_functions_of_seed_and_step():
    task = AddingProblem(10)
    a, b = task.stream(8, seed=3), task.stream(8, seed=3)
    np.testing.assert_array_equal(a(5).xs, b(5).xs)
    np.testing.assert_array_equal(a(5).xs, task.sample(jax.random.fold_in(jax.random.key(3), 5), 8).xs)
    assert not np.array_equal(a(5).xs, a(6).xs)
    assert not np.array_equal(a(5).xs, task.stream(8, seed=4)(5).xs)


def test_errors():
    with pytest.raises(ValueError, match="'length'"):
        adding_problem(jax.random.key(0), 4, 1)
    with pytest.raises(ValueError, match="'batch_size'"):
        adding_problem(jax.random.key(0), 0, 10)
    with pytest.raises(TypeError, match="'key'"):
        adding_problem(0, 4, 10)
    with pytest.raises(ValueError, match="'delay'"):
        copy_memory(jax.random.key(0), 4, 0)
    with pytest.raises(ValueError, match="'length'"):
        AddingProblem(1)
    with pytest.raises(ValueError, match="'num_symbols'"):
        CopyMemory(10, num_symbols=0)
