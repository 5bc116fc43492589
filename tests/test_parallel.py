"""``RNN(method="parallel" | "deer" | "quasi-deer")`` gives the sequential scan's values and gradients.

References: the sequential `lax.scan` and its autodiff (``fused_backward=False``), ``jax.jacfwd``,
Python loops and float64.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
from jaxrnn.layers.rnn import _finish_step
from jaxrnn.parallel import newton_scan
from jaxrnn.parallel.diagonal import structured_diagonal


def _loss(layer, lengths, key=None, with_outputs=False):
    """A loss reading every output and the final carry, with unequal weights (and, `with_outputs`,
    the outputs, final carry and info as aux: values and gradients from one compiled function)."""

    def loss(params, xs, carry, probe=None):
        ys, final, info = layer.apply_with_info(params, xs, lengths=lengths, carry=carry, key=key, probe=probe)
        w = jnp.cos(jnp.arange(ys.size, dtype=ys.dtype)).reshape(ys.shape)
        value = jnp.sum(w * jnp.tanh(ys)) + sum(jnp.sum(jnp.real(leaf) ** 2) for leaf in jax.tree.leaves(final))
        return (value, (ys, final, info)) if with_outputs else value

    return loss


def _random_carry(layer, params, batch_shape, seed=7):
    carry = layer.initial_carry(params, batch_shape)
    keys = jax.random.split(jax.random.key(seed), len(jax.tree.leaves(carry)))
    leaves = [
        jax.random.normal(k, leaf.shape, jnp.float32).astype(leaf.dtype) * 0.5
        for k, leaf in zip(keys, jax.tree.leaves(carry))
    ]
    return jax.tree.unflatten(jax.tree.structure(carry), leaves)


def _assert_close(a, b, rtol, atol):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


def _compare(cell, method, *, reverse=False, rtol=2e-5, atol=2e-5, grad_atol=1e-4, **rnn_kw):
    """Values and gradients (params, inputs, initial carry) of `method` vs the sequential scan, on a
    padded batch with two batch dims; returns the `NewtonInfo`."""
    sequential = jaxrnn.RNN(cell, reverse=reverse, fused_backward=False)
    parallel = jaxrnn.RNN(cell, reverse=reverse, method=method, **rnn_kw)
    params = sequential.init(jax.random.key(0), 3)
    if "b" in params:
        params["b"] = 0.3 * jax.random.normal(jax.random.key(1), params["b"].shape)
    xs = jax.random.normal(jax.random.key(2), (2, 3, 16, 3))
    lengths = jnp.array([[16, 9, 0], [1, 12, 16]])
    carry = _random_carry(sequential, params, (2, 3))

    def run(layer):
        fn = jax.value_and_grad(_loss(layer, lengths, with_outputs=True), argnums=(0, 1, 2), has_aux=True)
        (_, outputs), grads = jax.jit(fn)(params, xs, carry)
        return outputs, grads

    (ys_seq, final_seq, _), g_seq = run(sequential)
    (ys, final, info), g_par = run(parallel)
    _assert_close((ys, final), (ys_seq, final_seq), rtol, atol)
    assert float(jnp.abs(ys[0, 2]).max()) == 0.0  # length 0: outputs exactly zero ...
    _assert_close(jax.tree.map(lambda c: c[0, 2], final), jax.tree.map(lambda c: c[0, 2], carry), 0, 0)  # ... carry kept
    _assert_close(g_par, g_seq, rtol=1e-4, atol=grad_atol)
    return info


# ---- linear cells: one associative scan ------------------------------------------------------------

LINEAR_CELLS = [
    jaxrnn.MinGRU(5),
    jaxrnn.MinLSTM(5),
    jaxrnn.MinGRU(5, log_space=False),
    jaxrnn.LRU(5, state_size=4, r_min=0.5, r_max=0.99),
]


@pytest.mark.parametrize(
    "cell, reverse", [(cell, i % 2 == 1) for i, cell in enumerate(LINEAR_CELLS)], ids=lambda c: str(getattr(c, "log_space", c))
)
def test_parallel_scan_equals_sequential_values_and_gradients(cell, reverse):
    info = _compare(cell, "parallel", reverse=reverse)
    assert int(info.iterations) == 0 and bool(info.converged) and not bool(info.fell_back)


@pytest.mark.parametrize("cell", [jaxrnn.MinGRU(4), jaxrnn.LRU(4)], ids=type)
def test_parallel_scan_probe_gradients_equal_sequential(cell):
    """The diagnostics probe (dL/dh_t for every t) through the parallel scan, log space included."""
    sequential, parallel = jaxrnn.RNN(cell), jaxrnn.RNN(cell, method="parallel")
    params = sequential.init(jax.random.key(0), 2)
    xs = jax.random.normal(jax.random.key(1), (3, 16, 2))
    lengths = jnp.array([16, 5, 11])
    probe = jnp.zeros((3, 16, 4))
    carry = sequential.initial_carry(params, (3,))
    g_seq = jax.jit(jax.grad(_loss(sequential, lengths), argnums=3))(params, xs, carry, probe)
    g_par = jax.jit(jax.grad(_loss(parallel, lengths), argnums=3))(params, xs, carry, probe)
    np.testing.assert_allclose(g_par, g_seq, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_parallel_scan_in_float64_agrees_to_1e_12_over_a_long_sequence():
    with jax.enable_x64(True):
        cell = jaxrnn.MinGRU(4, dtype=jnp.float64)
        sequential, parallel = jaxrnn.RNN(cell), jaxrnn.RNN(cell, method="parallel")
        params = cell.init(jax.random.key(0), 2)
        xs = jax.random.normal(jax.random.key(1), (2, 1000, 2), jnp.float64)
        ys_seq, _ = jax.jit(sequential.apply)(params, xs)
        ys_par, _ = jax.jit(parallel.apply)(params, xs)
        assert ys_par.dtype == jnp.float64
        np.testing.assert_allclose(ys_par, ys_seq, rtol=1e-12)


# ---- nonlinear cells: DEER and quasi-DEER ---------------------------------------------------------

NONLINEAR_CELLS = [jaxrnn.SimpleRNN(5), jaxrnn.LSTM(5), jaxrnn.GRU(5)]


@pytest.mark.parametrize("method", ["deer", "quasi-deer"])
@pytest.mark.parametrize("cell", NONLINEAR_CELLS, ids=type)
def test_deer_equals_sequential_values_and_gradients(cell, method):
    reverse = isinstance(cell, jaxrnn.GRU)  # one reverse direction per method keeps the run short
    info = _compare(cell, method, reverse=reverse, tol=1e-6)
    assert bool(info.converged) and not bool(info.fell_back)
    assert 1 <= int(info.iterations) <= 16 + 1  # exact after T + 1 iterations at the latest


@pytest.mark.parametrize(
    "cell",
    [
        jaxrnn.GRU(4, reset_after=False),
        pytest.param(jaxrnn.LSTM(4, proj_size=3, peephole=True), marks=pytest.mark.slow),
        pytest.param(jaxrnn.LSTM(4, layer_norm=True), marks=pytest.mark.slow),
        pytest.param(jaxrnn.MGU(4), marks=pytest.mark.slow),
    ],
    ids=lambda c: type(c).__name__,
)
def test_deer_on_cells_without_the_elementwise_split(cell):
    """Cells whose step is no ``update(u + h @ w_hh)``: the dense Jacobian's diagonal for quasi-DEER."""
    sequential = jaxrnn.RNN(cell)
    params = sequential.init(jax.random.key(0), 3)
    xs = jax.random.normal(jax.random.key(1), (2, 20, 3))
    expected = sequential.apply(params, xs)
    for method in ("deer", "quasi-deer"):
        ys, final, info = jax.jit(jaxrnn.RNN(cell, method=method, tol=1e-6).apply_with_info)(params, xs)
        assert bool(info.converged) and not bool(info.fell_back)
        _assert_close((ys, final), expected, 2e-5, 2e-5)


def test_deer_with_dropout_zoneout_and_probe_equals_sequential():
    cell = jaxrnn.LSTM(4)
    options = {"dropout": 0.2, "recurrent_dropout": 0.3, "zoneout": 0.1, "time_major": True}
    sequential = jaxrnn.RNN(cell, **options)
    params = sequential.init(jax.random.key(0), 3)
    xs = jax.random.normal(jax.random.key(1), (18, 2, 3))
    lengths = jnp.array([18, 6])
    carry = sequential.initial_carry(params, (2,))
    probe = jnp.zeros((18, 2, 4))
    # zoneout's expectation form with quasi-DEER, the stochastic masks with DEER
    for key, method in ((None, "quasi-deer"), (jax.random.key(3), "deer")):
        parallel = jaxrnn.RNN(cell, method=method, tol=1e-6, **options)
        args = (params, xs, carry, probe)
        v_seq, g_seq = jax.jit(jax.value_and_grad(_loss(sequential, lengths, key), argnums=(0, 1, 3)))(*args)
        v_par, g_par = jax.jit(jax.value_and_grad(_loss(parallel, lengths, key), argnums=(0, 1, 3)))(*args)
        np.testing.assert_allclose(v_par, v_seq, rtol=1e-5)
        _assert_close(g_par, g_seq, 1e-4, 1e-4)


@pytest.mark.parametrize(
    "cell", [jaxrnn.SimpleRNN(5, activation="relu"), jaxrnn.LSTM(5, peephole=True), jaxrnn.GRU(5)], ids=type
)
def test_structured_diagonal_is_the_jacobians_diagonal(cell):
    params = jax.tree.map(lambda a: a + 0.2 * jax.random.normal(jax.random.key(3), a.shape), cell.init(jax.random.key(0), 3))
    carry = _random_carry(jaxrnn.RNN(cell), params, (1,))
    finish = functools.partial(_finish_step, cell, jax.tree.map(lambda _: 0.25, carry))  # zoneout expectation
    diagonal = structured_diagonal(cell, finish, params, carry)
    assert diagonal is not None
    c = jax.tree.map(lambda leaf: leaf[0], carry)
    u = cell.project(params, jax.random.normal(jax.random.key(4), (3,)))
    mask = jax.random.uniform(jax.random.key(5), (5,), minval=0.5, maxval=2.0)  # a recurrent dropout mask
    leaves, treedef = jax.tree.flatten(c)
    sizes = np.cumsum([leaf.size for leaf in leaves])[:-1]

    def flat_step(s):
        c_ = treedef.unflatten(jnp.split(s, sizes))
        new = finish(*cell.recur(params, c_, u, recurrent_mask=mask), c_, jnp.asarray(True), None, None)[0]
        return jnp.concatenate(jax.tree.leaves(new))

    expected = jnp.diagonal(jax.jacfwd(flat_step)(jnp.concatenate(leaves)))
    got = jnp.concatenate(jax.tree.leaves(diagonal(params, c, (u, jnp.asarray(True), None, None, mask))))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cell", [jaxrnn.LSTM(4, proj_size=4), jaxrnn.GRU(4, reset_after=False), jaxrnn.MGU(4)], ids=type)
def test_cells_without_an_elementwise_update_take_the_dense_diagonal(cell):
    # LSTM(proj_size=H): the shapes fit, but h = (o * tanh c) @ w_hr is not elementwise
    params = cell.init(jax.random.key(0), 2)
    assert structured_diagonal(cell, None, params, cell.initial_carry(params, (1,))) is None


def test_newton_on_a_linear_cell_converges_in_one_step():
    """Newton's linearisation of a linear recurrence is exact: iteration 1 solves it, 2 confirms."""
    cell = jaxrnn.MinGRU(4)
    params = cell.init(jax.random.key(0), 2)
    xs = jax.random.normal(jax.random.key(1), (2, 50, 2))
    expected, _ = jax.jit(jaxrnn.RNN(cell).apply)(params, xs)
    ys, _, info = jax.jit(jaxrnn.RNN(cell, method="deer").apply_with_info)(params, xs)
    assert int(info.iterations) == 2 and bool(info.converged)
    np.testing.assert_allclose(ys, expected, rtol=1e-5, atol=1e-6)


def _chaotic():
    """An Elman RNN with recurrent weights 3x orthogonal: expanding, chaotic dynamics (positive
    Lyapunov exponent) on which Newton needs about T iterations."""
    cell = jaxrnn.SimpleRNN(8)
    params = cell.init(jax.random.key(0), 2)
    params = {**params, "w_hh": 3.0 * params["w_hh"]}
    xs = jax.random.normal(jax.random.key(1), (2, 64, 2))
    return cell, params, xs


@pytest.mark.parametrize("method", ["deer", pytest.param("quasi-deer", marks=pytest.mark.slow)])
def test_deer_falls_back_to_the_sequential_scan_when_it_does_not_converge(method):
    cell, params, xs = _chaotic()
    # The fallback scans the projected inputs of all steps (DEER projects them at once): the sequential
    # scan with the projection hoisted. A chaotic cell grows any other order of round-off (on CPU the
    # default loop runs one [x, h] GEMM per step) to 1e-3 within 64 steps.
    sequential = jaxrnn.RNN(cell, hoist=True)
    capped = jaxrnn.RNN(cell, method=method, max_iter=3)
    expected = sequential.apply(params, xs)
    ys, final, info = jax.jit(capped.apply_with_info)(params, xs)
    assert int(info.iterations) == 3 and not bool(info.converged) and bool(info.fell_back)
    assert float(info.error) > 0.1
    _assert_close((ys, final), expected, 1e-6, 1e-6)
    loss = lambda layer: lambda p: jnp.sum(layer.apply(p, xs)[0] * jnp.cos(jnp.arange(8.0)))
    g_seq, g_par = jax.jit(jax.grad(loss(sequential)))(params), jax.jit(jax.grad(loss(capped)))(params)
    _assert_close(g_par, g_seq, 1e-5, 1e-3)  # gradients ~1e3 here: the sequential adjoint, same to round-off
    # without the fallback, the third iterate comes back, and it is far from the solution
    ys_raw, _, info_raw = jax.jit(jaxrnn.RNN(cell, method=method, max_iter=3, fallback=False).apply_with_info)(params, xs)
    assert not bool(info_raw.fell_back) and float(jnp.abs(ys_raw - expected[0]).max()) > 0.1


def test_newton_scan_on_a_custom_step_matches_a_python_loop_and_its_gradients():
    def step(p, h, x):
        h = 0.8 * jnp.tanh(h * p["a"] + x @ p["w"]) + 0.1 * jnp.roll(h, 1)
        return h, jnp.sum(h)

    params = {"a": jnp.array([0.5, -0.3, 0.9]), "w": jax.random.normal(jax.random.key(0), (2, 3))}
    h0 = jax.random.normal(jax.random.key(1), (4, 3))
    xs = jax.random.normal(jax.random.key(2), (12, 4, 2))

    def loop(p, h0, xs):
        h, ys = h0, []
        for t in range(12):
            h, y = jax.vmap(step, in_axes=(None, 0, 0))(p, h, xs[t])
            ys.append(y)
        return h, jnp.stack(ys)

    h_ref, ys_ref = jax.jit(loop)(params, h0, xs)
    for quasi in (False, True):
        hs, ys, info = jax.jit(functools.partial(newton_scan, step, quasi=quasi, tol=1e-6))(params, h0, xs)
        assert bool(info.converged)
        np.testing.assert_allclose(hs[-1], h_ref, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ys, ys_ref, rtol=1e-5, atol=1e-5)
    weights = jnp.sin(jnp.arange(12.0))[:, None]
    g = jax.grad(lambda p, h0, xs: jnp.sum(weights * newton_scan(step, p, h0, xs, quasi=True, tol=1e-6)[1]), (0, 1, 2))
    g_ref = jax.grad(lambda p, h0, xs: jnp.sum(weights * loop(p, h0, xs)[1]), (0, 1, 2))
    _assert_close(jax.jit(g)(params, h0, xs), jax.jit(g_ref)(params, h0, xs), 1e-4, 1e-5)


@pytest.mark.slow
def test_deer_in_float64_meets_its_default_tolerance():
    with jax.enable_x64(True):
        cell = jaxrnn.GRU(6, dtype=jnp.float64)
        params = cell.init(jax.random.key(0), 2)
        xs = jax.random.normal(jax.random.key(1), (2, 200, 2), jnp.float64)
        expected, _ = jax.jit(jaxrnn.RNN(cell).apply)(params, xs)
        ys, _, info = jax.jit(jaxrnn.RNN(cell, method="deer").apply_with_info)(params, xs)
        assert bool(info.converged) and ys.dtype == jnp.float64
        np.testing.assert_allclose(ys, expected, rtol=1e-9, atol=1e-10)


# ---- composition -----------------------------------------------------------------------------------


def _same_as_sequential(parallel, sequential, params, xs, lengths):
    run = lambda layer: jax.jit(functools.partial(layer.apply, lengths=lengths))(params, xs)
    _assert_close(run(parallel), run(sequential), 2e-5, 2e-5)


def test_parallel_layers_compose_in_bidirectional_and_models():
    xs = jax.random.normal(jax.random.key(1), (3, 15, 2))
    lengths = jnp.array([15, 4, 9])
    mixed = jaxrnn.Bidirectional(jaxrnn.RNN(jaxrnn.MinGRU(4), method="parallel"), jaxrnn.RNN(jaxrnn.GRU(4), method="quasi-deer"))
    mixed_seq = jaxrnn.Bidirectional(jaxrnn.RNN(jaxrnn.MinGRU(4)), jaxrnn.RNN(jaxrnn.GRU(4)))
    _same_as_sequential(mixed, mixed_seq, mixed_seq.init(jax.random.key(0), 2), xs, lengths)
    model = jaxrnn.models.SequenceClassifier(jaxrnn.RNN(jaxrnn.MinLSTM(8), method="parallel"), num_classes=3)
    reference = jaxrnn.models.SequenceClassifier(jaxrnn.RNN(jaxrnn.MinLSTM(8)), num_classes=3)
    _same_as_sequential(model, reference, model.init(jax.random.key(0), 2), xs, lengths)


@pytest.mark.slow
def test_parallel_layers_compose_in_stacked_fused_bidirectional_and_wrappers():
    xs = jax.random.normal(jax.random.key(1), (3, 15, 2))
    lengths = jnp.array([15, 4, 9])
    fused = jaxrnn.Bidirectional(jaxrnn.RNN(jaxrnn.GRU(4), method="deer"), fuse_directions=True)  # DEER under vmap
    fused_seq = jaxrnn.Bidirectional(jaxrnn.RNN(jaxrnn.GRU(4)), fuse_directions=True)
    _same_as_sequential(fused, fused_seq, fused_seq.init(jax.random.key(0), 2), xs, lengths)
    deep_par = jaxrnn.Stacked([jaxrnn.RNN(jaxrnn.LRU(6), method="parallel"), jaxrnn.RNN(jaxrnn.MinLSTM(4), method="parallel")])
    deep_seq = jaxrnn.Stacked([jaxrnn.RNN(jaxrnn.LRU(6)), jaxrnn.RNN(jaxrnn.MinLSTM(4))])
    _same_as_sequential(deep_par, deep_seq, deep_seq.init(jax.random.key(0), 2), xs, lengths)
    learned = jaxrnn.LearnableCarry(jaxrnn.GRU(4))  # a wrapped cell: DEER takes any real carry
    params = jaxrnn.RNN(learned).init(jax.random.key(0), 2)
    _same_as_sequential(jaxrnn.RNN(learned, method="deer"), jaxrnn.RNN(learned), params, xs, lengths)


def test_one_and_zero_steps():
    cell, method = jaxrnn.MinGRU(3), "parallel"  # zero steps take the sequential scan whatever the method
    params = cell.init(jax.random.key(0), 2)
    carry = jnp.full((2, 3), 0.5)
    for steps in (1, 0):
        xs = jax.random.normal(jax.random.key(1), (2, steps, 2))
        lengths = jnp.array([steps, 0])
        expected = jaxrnn.RNN(cell).apply(params, xs, lengths=lengths, carry=carry)
        got = jaxrnn.RNN(cell, method=method).apply(params, xs, lengths=lengths, carry=carry)
        assert got[0].shape == (2, steps, 3)
        _assert_close(got, expected, 1e-6, 1e-6)


# ---- errors ----------------------------------------------------------------------------------------


def test_bad_methods_and_options_fail_early():
    with pytest.raises(ValueError, match=r"argument 'method' must be one of \['sequential', 'parallel', 'deer', 'quasi-deer'\]"):
        jaxrnn.RNN(jaxrnn.GRU(4), method="newton")
    with pytest.raises(ValueError, match="method='parallel' needs a linear-recurrence cell .* got GRU; .*'deer'"):
        jaxrnn.RNN(jaxrnn.GRU(4), method="parallel")
    with pytest.raises(ValueError, match="'remat' must be False with method='deer'"):
        jaxrnn.RNN(jaxrnn.GRU(4), method="deer", remat=True)
    with pytest.raises(ValueError, match="'zoneout' must be 0.0 with method='parallel'"):
        jaxrnn.RNN(jaxrnn.MinGRU(4), method="parallel", zoneout=0.1)
    with pytest.raises(ValueError, match="'tol' must be None or a positive float, got -1"):
        jaxrnn.RNN(jaxrnn.GRU(4), method="deer", tol=-1)
    with pytest.raises(ValueError, match="'max_iter' must be a positive int, got 0"):
        jaxrnn.RNN(jaxrnn.GRU(4), method="deer", max_iter=0)
    with pytest.raises(TypeError, match="'fallback' must be a bool"):
        jaxrnn.RNN(jaxrnn.GRU(4), method="deer", fallback="yes")
    lru = jaxrnn.RNN(jaxrnn.LRU(4), method="deer")
    params = lru.init(jax.random.key(0), 2)
    with pytest.raises(ValueError, match="'carry0' must have real floating leaves of one dtype"):
        lru.apply(params, jnp.ones((1, 3, 2)))
