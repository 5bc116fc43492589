"""`jaxrnn.layers.stacking.scan`: `lax.scan`'s results, without XLA:CPU's bfloat16 stacking."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
from jaxrnn.layers import stacking

CPU = jax.default_backend() == "cpu"
T, B, H = 9, 3, 5


def _body(c, x):
    """Mixed dtypes in and out, a None leaf, and a stacked output of another dtype than its input."""
    h32, h16 = c
    x16, x32, _ = x
    h32 = jnp.tanh(h32 + x32 @ jnp.ones((H, H), jnp.float32) * 0.1)
    h16 = jnp.tanh(h16 * jnp.bfloat16(0.9) + x16)
    return (h32, h16), {"h16": h16, "h32": h32, "mix": (h16.astype(jnp.float32) * h32).astype(jnp.bfloat16)}


def _inputs():
    k1, k2 = jax.random.split(jax.random.key(0))
    xs = (jax.random.normal(k1, (T, B, H)).astype(jnp.bfloat16), jax.random.normal(k2, (T, B, H)), None)
    carry = (jnp.zeros((B, H)), jnp.zeros((B, H), jnp.bfloat16))
    return carry, xs


def _assert_identical(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(np.asarray(x, np.float32), np.asarray(y, np.float32))


@pytest.mark.parametrize("options", [{}, {"reverse": True}, {"unroll": 2}], ids=["plain", "reverse", "unroll2"])
def test_same_results_as_lax_scan(options):
    carry, xs = _inputs()
    expected = jax.jit(lambda c, x: jax.lax.scan(_body, c, x, **options))(carry, xs)
    got = jax.jit(lambda c, x: stacking.scan(_body, c, x, **options))(carry, xs)
    _assert_identical(got, expected)


def _assert_close(a, b, rel=0.03):
    """Equal to bfloat16 round-off: XLA may keep intermediate sums in float32 (excess precision)
    differently in two programs, so bfloat16 gradients agree to about one rounding, not bit for bit."""
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape
        x, y = np.asarray(x, np.float32), np.asarray(y, np.float32)
        np.testing.assert_allclose(x, y, rtol=0, atol=rel * float(np.abs(y).max()) + 1e-6)


def test_same_gradients_as_lax_scan_to_second_order():
    carry, xs = _inputs()

    def loss(scan, c, x16, x32):
        final, ys = scan(_body, c, (x16, x32, None))
        return sum(jnp.sum(leaf.astype(jnp.float32) ** 2) for leaf in jax.tree.leaves((final, ys)))

    ours = jax.grad(lambda *a: loss(stacking.scan, *a), argnums=(0, 1, 2))
    reference = jax.grad(lambda *a: loss(jax.lax.scan, *a), argnums=(0, 1, 2))
    _assert_close(jax.jit(ours)(carry, *xs[:2]), jax.jit(reference)(carry, *xs[:2]))

    def curvature(grad_fn):  # d/dx16 of sum(dL/dx16): nonzero only if the loop is differentiable twice
        return jax.grad(lambda x16: jnp.sum(grad_fn(carry, x16, xs[1])[1].astype(jnp.float32)))(xs[0])

    second = jax.jit(lambda: curvature(ours))()
    assert float(jnp.abs(second.astype(jnp.float32)).max()) > 0
    _assert_close(second, jax.jit(lambda: curvature(reference))(), rel=0.05)


@pytest.mark.skipif(not CPU, reason="XLA:CPU's workaround only")
def test_bfloat16_crosses_the_loop_as_float32_on_cpu():
    """The loop itself reads and writes float32 stacks (XLA:CPU writes those in place)."""
    carry, xs = _inputs()
    jaxpr = jax.make_jaxpr(lambda c, x: stacking.scan(_body, c, x))(carry, xs)
    (loop,) = [e for e in jaxpr.eqns if e.primitive.name == "scan"]
    dtypes = {str(v.aval.dtype) for v in loop.outvars[2:]} | {str(v.aval.dtype) for v in loop.invars if v.aval.ndim == 3}
    assert dtypes == {"float32"}
    assert stacking.affected(xs) and not stacking.affected(carry[0])


def _scan_of_step(cell, params, xs):
    """The reference: `jax.lax.scan` of the cell's own `step` over batch-major `xs`."""
    c0 = cell.initial_carry(params, xs.shape[:1])
    return jax.lax.scan(lambda c, x_t: cell.step(params, c, x_t), c0, jnp.swapaxes(xs, 0, 1))[1].swapaxes(0, 1)


def test_not_affected_off_cpu(monkeypatch):
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert not stacking.affected(jnp.zeros(2, jnp.bfloat16))


@pytest.mark.parametrize("fused_backward", [True, False])
@pytest.mark.parametrize("cell", [jaxrnn.LSTM(6), jaxrnn.GRU(6), jaxrnn.SimpleRNN(6)], ids=["lstm", "gru", "elman"])
def test_bfloat16_rnn_matches_a_plain_lax_scan(cell, fused_backward):
    """A bfloat16 RNN (parameters, inputs and carry) gives the values and gradients of scanning its
    cell's `step` with `jax.lax.scan`, through both the fused loops and autodiff's."""
    import dataclasses

    cell = dataclasses.replace(cell, dtype=jnp.bfloat16)
    layer = jaxrnn.RNN(cell, fused_backward=fused_backward, hoist=False)
    params = layer.init(jax.random.key(0), 4)
    xs = jax.random.normal(jax.random.key(1), (2, 11, 4)).astype(jnp.bfloat16)

    reference = functools.partial(_scan_of_step, cell)

    ys, _ = jax.jit(layer.apply)(params, xs)
    expected = jax.jit(reference)(params, xs)
    assert ys.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(ys, np.float32), np.asarray(expected, np.float32), atol=2e-2)
    loss = lambda f: jax.grad(lambda p, x: jnp.sum(f(p, x).astype(jnp.float32) ** 2), argnums=(0, 1))  # noqa: E731
    got, want = jax.jit(loss(lambda p, x: layer.apply(p, x)[0]))(params, xs), jax.jit(loss(reference))(params, xs)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        assert a.dtype == b.dtype
        scale = float(jnp.abs(b.astype(jnp.float32)).max())
        np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b, np.float32), atol=0.05 * scale + 1e-2)


def test_bfloat16_second_order_through_the_fused_backward():
    """The fused custom VJP's own loops are differentiated for second-order derivatives: in bfloat16
    on CPU they must stay differentiable (a bit-pattern stack would give a silent zero here)."""
    import dataclasses

    cell = dataclasses.replace(jaxrnn.GRU(4), dtype=jnp.bfloat16)
    layer = jaxrnn.RNN(cell, fused_backward=True, hoist=False)
    params = layer.init(jax.random.key(0), 3)
    xs = jax.random.normal(jax.random.key(1), (2, 6, 3)).astype(jnp.bfloat16)

    reference = functools.partial(_scan_of_step, cell)

    def curvature(f):  # d/dxs of sum(dL/dw_hh)
        d_w_hh = jax.grad(lambda p, x: jnp.sum(f(p, x).astype(jnp.float32) ** 2))
        return jax.grad(lambda x: jnp.sum(d_w_hh(params, x)["w_hh"].astype(jnp.float32)))(xs)

    got = jax.jit(lambda: curvature(lambda p, x: layer.apply(p, x)[0]))()
    want = jax.jit(lambda: curvature(reference))()
    assert float(jnp.abs(want.astype(jnp.float32)).max()) > 0
    _assert_close(got, want, rel=0.1)


_UNFUSED = {
    "lstm-layer-norm": jaxrnn.LSTM(5, layer_norm=True),
    "gru-reset-before": jaxrnn.GRU(5, reset_after=False),
}


@pytest.mark.parametrize(
    "name,options",
    [("lstm-layer-norm", {"reverse": True, "recurrent_dropout": 0.3, "zoneout": 0.2}), ("gru-reset-before", {})],
    ids=["lstm-layer-norm-reverse-noise", "gru-reset-before-plain"],
)
def test_bfloat16_cells_without_a_fused_backward_recompute_each_step(name, options):
    """A bfloat16 cell without the fused split (layer-norm LSTM, GRU reset-before) takes the
    recomputing backward on CPU (`stacking.scan_recomputing`): the gradients w.r.t. the parameters,
    the inputs, the initial carry and the diagnostics probe are autodiff's, with padding, reverse,
    recurrent dropout and zoneout; `fused_backward=False` keeps plain autodiff."""
    import dataclasses

    cell = dataclasses.replace(_UNFUSED[name], dtype=jnp.bfloat16)
    ours, autodiff = (jaxrnn.RNN(cell, fused_backward=f, **options) for f in (None, False))
    params = ours.init(jax.random.key(0), 4)
    k1, k2, k3 = jax.random.split(jax.random.key(1), 3)
    xs = jax.random.normal(k1, (3, 10, 4)).astype(jnp.bfloat16)
    probe = (0.1 * jax.random.normal(k2, (3, 10, 5))).astype(jnp.bfloat16)
    carry = jax.tree.map(lambda c: (0.5 * jax.random.normal(k3, c.shape)).astype(c.dtype), cell.initial_carry(params, (3,)))
    lengths = jnp.array([10, 7, 0])

    def run(layer):
        return lambda p, x, c, pr: layer.apply(p, x, lengths=lengths, carry=c, key=jax.random.key(2), probe=pr)

    def loss(layer):
        def f(*args):
            ys, final = run(layer)(*args)
            return jnp.sum(ys.astype(jnp.float32) ** 2) + sum(jnp.sum(leaf.astype(jnp.float32)) for leaf in jax.tree.leaves(final))
        return jax.grad(f, argnums=(0, 1, 2, 3))

    if CPU:
        assert "custom_vjp_call" in str(jax.make_jaxpr(run(ours))(params, xs, carry, probe))
        assert "custom_vjp_call" not in str(jax.make_jaxpr(run(autodiff))(params, xs, carry, probe))
    got = jax.jit(loss(ours))(params, xs, carry, probe)
    want = jax.jit(loss(autodiff))(params, xs, carry, probe)
    _assert_close(got, want, rel=0.05)


def test_the_recomputing_backward_is_differentiable_again():
    """Second order (d/dxs of the summed weight gradient) through `scan_recomputing`'s loops equals
    autodiff's, as the fused backward's does."""
    import dataclasses

    cell = dataclasses.replace(jaxrnn.LSTM(4, layer_norm=True), dtype=jnp.bfloat16)
    ours, autodiff = (jaxrnn.RNN(cell, fused_backward=f) for f in (None, False))
    params = ours.init(jax.random.key(0), 3)
    xs = jax.random.normal(jax.random.key(1), (2, 6, 3)).astype(jnp.bfloat16)

    def curvature(layer):
        d_w_hh = jax.grad(lambda p, x: jnp.sum(layer.apply(p, x)[0].astype(jnp.float32) ** 2))
        return jax.grad(lambda x: jnp.sum(d_w_hh(params, x)["w_hh"].astype(jnp.float32)))(xs)

    got, want = jax.jit(lambda: curvature(ours))(), jax.jit(lambda: curvature(autodiff))()
    assert float(jnp.abs(want.astype(jnp.float32)).max()) > 0
    _assert_close(got, want, rel=0.1)


def test_scan_recomputing_float32_equals_autodiff_exactly_enough():
    """In float32 (no bfloat16 anywhere) the recomputed gradients equal autodiff's to round-off, with
    a per-step input that takes no gradient and a constant."""
    w = jax.random.normal(jax.random.key(0), (H, H)) * 0.3
    xs = jax.random.normal(jax.random.key(1), (T, B, H))
    keep = jax.random.bernoulli(jax.random.key(2), 0.7, (T, B, 1))

    def step(params, scale, h, x, m):
        h = jnp.where(m, jnp.tanh(scale * x + h @ params["w"]), h)
        return h, h * h

    def loss(scan_fn):
        def f(p, h0, x):
            final, ys = scan_fn(p, h0, x)
            return jnp.sum(ys) + jnp.sum(jnp.sin(final))
        return jax.grad(f, argnums=(0, 1, 2))

    h0 = jnp.ones((B, H)) * 0.1
    ours = loss(lambda p, h0, x: stacking.scan_recomputing(step, p, h0, x, 0.5, keep, reverse=True, unroll=2))
    plain = loss(lambda p, h0, x: jax.lax.scan(lambda h, xm: step(p, 0.5, h, *xm), h0, (x, keep), reverse=True))
    for a, b in zip(jax.tree.leaves(jax.jit(ours)({"w": w}, h0, xs)), jax.tree.leaves(jax.jit(plain)({"w": w}, h0, xs)), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
