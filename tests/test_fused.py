"""The fused backward (custom VJP) equals plain autodiff of the scan, under every RNN option.

Also: chunked remat gives the same values and gradients with a fraction of the activation memory,
and `hoist` (projection before vs inside the loop), the one-GEMM step and the inference loop change
nothing but speed.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
from jaxrnn.layers.fused import supports_fused

F, B, T = 3, 4, 7
CELLS = {
    "elman": jaxrnn.SimpleRNN(5),
    "elman-relu": jaxrnn.SimpleRNN(5, activation="relu"),
    "lstm": jaxrnn.LSTM(5),
    "lstm-peep-proj": jaxrnn.LSTM(5, peephole=True, proj_size=3),
    "gru": jaxrnn.GRU(5),
}
OPTIONS = {
    "plain": {},
    "reverse": {"reverse": True},
    "hoist": {"hoist": True},
    "unroll3": {"unroll": 3},
    "remat": {"remat": True},
    "remat3-reverse": {"remat": 3, "reverse": True},
    "dropouts": {"dropout": 0.3, "recurrent_dropout": 0.4},
    "zoneout": {"zoneout": 0.2},
}


def _loss(layer, params, xs, carry, probe, key):
    ys, final = layer.apply(params, xs, lengths=jnp.array([7, 4, 0, 6]), carry=carry, probe=probe, key=key)
    return jnp.sum(jnp.sin(ys) * ys) + sum(jnp.sum(jnp.cos(leaf)) for leaf in jax.tree.leaves(final))


# every option on the two cells with the most moving parts; the two that touch the carry on the rest
CASES = [(name, opt) for name in ("lstm-peep-proj", "gru") for opt in OPTIONS] + [
    (name, opt) for name in ("elman", "elman-relu", "lstm") for opt in ("plain", "zoneout")
]


@pytest.mark.parametrize("name,option", CASES)
def test_fused_equals_autodiff(name, option):
    cell = CELLS[name]
    assert supports_fused(cell)
    kw = OPTIONS[option]
    fused, plain = jaxrnn.RNN(cell, fused_backward=True, **kw), jaxrnn.RNN(cell, fused_backward=False, **kw)
    params = jax.tree.map(lambda a: a + 0.1, fused.init(jax.random.key(0), F))
    xs = jax.random.normal(jax.random.key(1), (B, T, F))
    carry = jax.tree.map(lambda c: c + 0.3, fused.initial_carry(params, (B,)))
    probe = jnp.zeros((B, T, cell.output_size))
    key = jax.random.key(2) if option in ("dropouts", "zoneout") else None
    grads = {}
    for tag, layer in (("fused", fused), ("plain", plain)):
        fn = jax.jit(jax.value_and_grad(lambda *a, layer=layer: _loss(layer, *a, key), argnums=(0, 1, 2, 3)))
        grads[tag] = fn(params, xs, carry, probe)
    for a, b in zip(jax.tree.leaves(grads["fused"]), jax.tree.leaves(grads["plain"])):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5)


def test_cells_without_the_split_fall_back_to_autodiff():
    for cell in (jaxrnn.LSTM(4, layer_norm=True), jaxrnn.GRU(4, reset_after=False), jaxrnn.MGU(4)):
        assert not supports_fused(cell)
        layer = jaxrnn.RNN(cell)
        params = layer.init(jax.random.key(0), F)
        xs = jax.random.normal(jax.random.key(1), (2, 5, F))
        g = jax.grad(lambda p: jnp.sum(layer.apply(p, xs)[0] ** 2))(params)
        g_ref = jax.grad(lambda p: jnp.sum(jaxrnn.RNN(cell, fused_backward=False).apply(p, xs)[0] ** 2))(params)
        for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_ref)):
            np.testing.assert_array_equal(a, b)


def test_fused_second_layer_of_a_bidirectional_stack_matches_torch_style_autodiff():
    net = jaxrnn.Stacked([jaxrnn.Bidirectional(jaxrnn.RNN(jaxrnn.GRU(6)))] * 2)
    plain = jaxrnn.Stacked([jaxrnn.Bidirectional(jaxrnn.RNN(jaxrnn.GRU(6), fused_backward=False))] * 2)
    params = net.init(jax.random.key(0), F)
    xs = jax.random.normal(jax.random.key(1), (3, 9, F))
    lengths = jnp.array([9, 5, 1])
    g1 = jax.grad(lambda p: jnp.sum(net.apply(p, xs, lengths=lengths)[0] ** 3))(params)
    g2 = jax.grad(lambda p: jnp.sum(plain.apply(p, xs, lengths=lengths)[0] ** 3))(params)
    for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2)):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-5)


def _peak_bytes(layer, params, xs):
    """XLA's peak for forward+backward w.r.t. params and inputs: arguments + outputs + temporaries."""
    fn = jax.jit(jax.grad(lambda p, x: jnp.sum(layer.apply(p, x)[0]), argnums=(0, 1)))
    m = fn.lower(params, xs).compile().memory_analysis()
    return m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes


@pytest.mark.parametrize("cell", [jaxrnn.LSTM(32), jaxrnn.GRU(32)], ids=["lstm", "gru"])
def test_remat_fits_a_long_sequence_in_a_quarter_of_the_memory(cell):
    """The issue's target, whole peak counted: inputs, their gradient and the outputs stay (what no
    remat can drop), and no transposed copy of them is added (chunks are sliced in place)."""
    params = jaxrnn.RNN(cell).init(jax.random.key(0), 32)
    xs = jnp.ones((4, 4096, 32))
    full = _peak_bytes(jaxrnn.RNN(cell), params, xs)
    chunked = _peak_bytes(jaxrnn.RNN(cell, remat=True), params, xs)
    assert chunked <= full / 4, (chunked, full)


@pytest.mark.parametrize("cell", [jaxrnn.LSTM(16), jaxrnn.GRU(16), jaxrnn.SimpleRNN(16)], ids=["lstm", "gru", "elman"])
def test_bfloat16_compute_with_float32_carry(cell):
    """compute_dtype=bfloat16: matmuls in bf16 accumulating in f32; gates, carry and outputs stay f32,
    within bf16 round-off of the f32 result; the fused backward still equals autodiff."""
    import dataclasses

    mixed = dataclasses.replace(cell, compute_dtype=jnp.bfloat16)
    params = jaxrnn.RNN(cell).init(jax.random.key(0), F)
    xs = jax.random.normal(jax.random.key(1), (B, 12, F))
    ys32, _ = jaxrnn.RNN(cell).apply(params, xs)
    ys16, final = jaxrnn.RNN(mixed).apply(params, xs)
    assert ys16.dtype == jnp.float32 and all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(final))
    err = float(jnp.abs(ys16 - ys32).max())
    assert 0 < err < 3e-2, err  # different (bf16 operands) but close
    loss = lambda layer: jax.grad(lambda p: jnp.sum(layer.apply(p, xs)[0] ** 2))(params)  # noqa: E731
    g_fused, g_plain = loss(jaxrnn.RNN(mixed, fused_backward=True)), loss(jaxrnn.RNN(mixed, fused_backward=False))
    for a, b in zip(jax.tree.leaves(g_fused), jax.tree.leaves(g_plain)):
        np.testing.assert_allclose(a, b, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("cell", [jaxrnn.LSTM(8), jaxrnn.SimpleRNN(8), jaxrnn.GRU(8)], ids=["lstm", "elman", "gru"])
def test_inference_forward_equals_the_differentiated_forward(cell):
    """A forward pass no gradient goes through runs the custom VJP's primal (on CPU with the loop rolled,
    `tuning.default_unroll(..., differentiated=False)`); it equals the forward half of value_and_grad,
    and the one-GEMM step ([x_t, h] @ [w_ih; w_hh]) equals the two-GEMM step of `cell.recur`."""
    layer = jaxrnn.RNN(cell, fused_backward=True)
    params = layer.init(jax.random.key(0), F)
    xs = jax.random.normal(jax.random.key(1), (1, 30, F))  # B=1: a tiny step, where the unrolls differ
    assert layer.scan_unroll(params, 1, differentiated=False) == 1 or jax.default_backend() != "cpu"
    inference = jax.jit(lambda p: layer.apply(p, xs)[0])(params)
    differentiated, _ = jax.jit(lambda p: jax.vjp(lambda q: layer.apply(q, xs)[0], p))(params)
    two_gemms = jax.jit(lambda p: jaxrnn.RNN(cell, fused_backward=False, hoist=False).apply(p, xs)[0])(params)
    np.testing.assert_allclose(inference, differentiated, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(inference, two_gemms, rtol=1e-5, atol=1e-6)


def test_one_gemm_step_only_for_a_plain_dense_projection():
    assert jaxrnn.LSTM(4).projects_densely and jaxrnn.SimpleRNN(4).projects_densely
    assert not jaxrnn.LSTM(4, layer_norm=True).projects_densely  # its projection is normalised
    assert not jaxrnn.ConvLSTM(4, kernel_size=(3, 3)).projects_densely


@pytest.mark.parametrize("name", ["elman", "lstm", "gru"])
def test_second_order_through_the_fused_backward_equals_autodiff(name):
    """The backward loop writes dz over the forward's saved z in place; differentiating that loop again
    (a gradient penalty: d/dparams ||dL/dxs||^2, reverse over reverse) must still give autodiff's value."""
    cell = CELLS[name]
    xs = jax.random.normal(jax.random.key(1), (2, T, F))
    penalties = []
    for fused in (True, False):
        layer = jaxrnn.RNN(cell, fused_backward=fused, recurrent_dropout=0.3)
        params = layer.init(jax.random.key(0), F)

        def penalty(p, layer=layer):
            loss = lambda x: jnp.sum(jnp.tanh(layer.apply(p, x, key=jax.random.key(2))[0]) ** 2)
            return jnp.sum(jax.grad(loss)(xs) ** 2)

        penalties.append(jax.grad(penalty)(params))
    for got, want in zip(jax.tree.leaves(penalties[0]), jax.tree.leaves(penalties[1])):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6 * float(np.max(np.abs(want))))  # float32 round-off


@pytest.mark.parametrize("unroll", [1, 4], ids=["rolled", "unrolled"])
def test_backward_loop_never_copies_a_whole_gate_stack(unroll):
    """The backward loop touches one step of the `[T, B, G·H]` gate stacks per iteration. It once wrote
    `dz_t` over the forward's `z_t` in its carry also when unrolled, and then XLA copied the whole stack
    before every step (O(T^2); on an H100 LSTM (64,1024,1024,1024) 833 ms instead of 39 ms). The
    optimised program must hold no copy of a buffer that size."""
    steps, batch, hidden = 64, 1, 16  # at (64, 2, 8) XLA:CPU did not copy even then
    rnn = jaxrnn.RNN(jaxrnn.LSTM(hidden), unroll=unroll, fused_backward=True)
    params = rnn.init(jax.random.key(0), F)
    xs = jax.random.normal(jax.random.key(1), (batch, steps, F))
    grad = jax.jit(jax.grad(lambda p, x: rnn.apply(p, x)[0].sum(), argnums=(0, 1)))
    hlo = grad.lower(params, xs).compile().as_text()
    stack = f"f32[{steps},{batch},{4 * hidden}]"
    copies = [line for line in hlo.splitlines() if stack in line and " copy(" in line]
    assert copies == [], copies
