"""ConvLSTM / ConvGRU over N-D grids: vs PyTorch convolutions with the equations written out, vs a
Python loop over time, and vs Flax linen ``ConvLSTMCell``."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import jaxrnn
from jaxrnn.cells.conv import conv_nd
from tests.families_util import normal, random_params

B, T, C, K = 2, 4, 2, 3

# torch notes that 'same' padding with an even kernel copies the input; that is the reference we want
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")


def _torch_conv(x: torch.Tensor, w: np.ndarray) -> torch.Tensor:
    """``SAME`` convolution of channels-last `x` [B, *grid, C] with a [*window, C, O] kernel, by PyTorch."""
    n = w.ndim - 2
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[n]
    wt = torch.tensor(np.asarray(w), dtype=torch.float64).permute(n + 1, n, *range(n))  # [O, C, *window]
    out = conv(x.movedim(-1, 1), wt, padding="same")
    return out.movedim(1, -1)


@pytest.mark.parametrize("window", [(3,), (3, 2), (1, 3, 2)], ids=["1d", "2d-even", "3d"])
def test_conv_nd_matches_torch_same_padding(window):
    x = normal((B, *(5,) * len(window), C), 0)
    w = normal((*window, C, 4), 1)
    ref = _torch_conv(torch.tensor(x, dtype=torch.float64), w)
    np.testing.assert_allclose(conv_nd(jnp.asarray(x), jnp.asarray(w)), ref.numpy(), atol=1e-5)


def _torch_convlstm(xs, p):
    x = torch.tensor(np.asarray(xs), dtype=torch.float64)
    Fh = p["b"].shape[0] // 4
    h = torch.zeros(*x.shape[:1], *x.shape[2:-1], Fh, dtype=torch.float64)
    c = torch.zeros_like(h)
    b = torch.tensor(np.asarray(p["b"]), dtype=torch.float64)
    outs = []
    for t in range(x.shape[1]):
        z = _torch_conv(x[:, t], p["w_ih"]) + _torch_conv(h, p["w_hh"]) + b
        i, f, g, o = torch.split(z, Fh, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outs.append(h)
    return torch.stack(outs, 1), h, c


def test_convlstm_matches_torch_equations_2d():
    cell = jaxrnn.ConvLSTM(3, kernel_size=(3, 3), recurrent_kernel_size=(2, 3))  # even: SAME pads low (k-1)//2
    params = random_params(cell, C, seed=1)
    xs = jnp.asarray(normal((B, T, 5, 6, C), 2))
    ys, carry = jax.jit(jaxrnn.RNN(cell).apply)(params, xs)
    ref_ys, ref_h, ref_c = _torch_convlstm(xs, params)
    assert ys.shape == (B, T, 5, 6, 3)
    np.testing.assert_allclose(ys, ref_ys.numpy(), atol=2e-5)
    np.testing.assert_allclose(carry.c, ref_c.numpy(), atol=2e-5)


def test_convlstm_3d_with_lengths_equals_a_python_loop_over_time():
    cell = jaxrnn.ConvLSTM(2, kernel_size=(3, 1, 3))
    params = random_params(cell, C, seed=4)
    xs = jnp.asarray(normal((B, T, 3, 2, 4, C), 5))
    lengths = np.array([T, 2])
    ys, carry = jaxrnn.RNN(cell).apply(params, xs, lengths=jnp.asarray(lengths))
    step = jax.jit(cell.step)
    for b in range(B):
        state = cell.initial_carry(params, xs.shape[2:-1])  # batch_shape of one sequence = its grid
        for t in range(lengths[b]):
            state, y = step(params, state, xs[b, t])
            np.testing.assert_allclose(ys[b, t], y, atol=1e-5)
        np.testing.assert_array_equal(ys[b, lengths[b] :], 0.0)
        np.testing.assert_allclose(carry.h[b], state.h, atol=1e-5)
        np.testing.assert_allclose(carry.c[b], state.c, atol=1e-5)


def test_convlstm_converts_from_flax_convlstmcell():
    flax_cell = nn.ConvLSTMCell(3, kernel_size=(3, 3))
    xs = jnp.asarray(normal((B, T, 5, 5, C), 6))
    # random values in Flax's own tree (what ConvLSTMCell.init would build; its init is slow on CPU)
    rng = np.random.default_rng(7)
    cell_params = {
        name: {"kernel": rng.normal(0, 0.3, (3, 3, fan_in, 12)).astype(np.float32), "bias": rng.normal(0, 0.3, 12).astype(np.float32)}
        for name, fan_in in (("ih", C), ("hh", 3))
    }
    variables = {"params": {"cell": cell_params}}
    (c_ref, h_ref), ys_ref = nn.RNN(flax_cell).apply(variables, xs, return_carry=True)
    cell, params = jaxrnn.interop.from_flax(flax_cell, variables["params"]["cell"])
    ys, carry = jaxrnn.RNN(cell).apply(params, xs)
    np.testing.assert_allclose(ys, ys_ref, atol=3e-6)
    np.testing.assert_allclose(carry.c, c_ref, atol=3e-6)
    flax_carry = jaxrnn.interop.carry_to_flax(cell, carry)
    np.testing.assert_array_equal(flax_carry[1], carry.h)
    with pytest.raises(NotImplementedError, match="strides"):
        jaxrnn.interop.from_flax(nn.ConvLSTMCell(3, kernel_size=(3, 3), strides=(2, 2)), variables["params"]["cell"])


@pytest.mark.parametrize("reset_after", [False, True])
def test_convgru_matches_torch_equations_1d(reset_after):
    Fh = 3
    cell = jaxrnn.ConvGRU(Fh, kernel_size=(K,), reset_after=reset_after)
    params = random_params(cell, C, seed=10)
    xs = jnp.asarray(normal((B, T, 7, C), 11))
    ys, h_final = jaxrnn.RNN(cell).apply(params, xs)

    x = torch.tensor(np.asarray(xs), dtype=torch.float64)
    b = torch.tensor(np.asarray(params["b"]), dtype=torch.float64)
    w_hh = np.asarray(params["w_hh"])
    h = torch.zeros(B, 7, Fh, dtype=torch.float64)
    outs = []
    for t in range(T):
        ux = _torch_conv(x[:, t], params["w_ih"]) + b
        hh = _torch_conv(h, w_hh[..., : 2 * Fh])
        r = torch.sigmoid(ux[..., :Fh] + hh[..., :Fh])
        z = torch.sigmoid(ux[..., Fh : 2 * Fh] + hh[..., Fh:])
        if reset_after:
            b_hn = torch.tensor(np.asarray(params["b_hn"]), dtype=torch.float64)
            n = torch.tanh(ux[..., 2 * Fh :] + r * (_torch_conv(h, w_hh[..., 2 * Fh :]) + b_hn))
        else:
            n = torch.tanh(ux[..., 2 * Fh :] + _torch_conv(r * h, w_hh[..., 2 * Fh :]))
        h = (1 - z) * n + z * h
        outs.append(h)
    np.testing.assert_allclose(ys, torch.stack(outs, 1).numpy(), atol=2e-5)
    np.testing.assert_allclose(h_final, h.numpy(), atol=2e-5)


def test_conv_cells_bad_config_and_inputs_name_the_argument():
    with pytest.raises(TypeError, match="kernel_size"):
        jaxrnn.ConvLSTM(3, kernel_size=3)
    with pytest.raises(ValueError, match="recurrent_kernel_size"):
        jaxrnn.ConvGRU(3, kernel_size=(3, 3), recurrent_kernel_size=(3,))
    with pytest.raises(ValueError, match="kernel_size"):
        jaxrnn.ConvSimpleRNN(3, kernel_size=(3, 0))
    cell = jaxrnn.ConvLSTM(3, kernel_size=(3, 3))
    params = cell.init(jax.random.key(0), C)
    with pytest.raises(ValueError, match=r"'xs'.*rank >= 4"):
        jaxrnn.RNN(cell).apply(params, jnp.ones((T, 5, C)))
    with pytest.raises(ValueError, match=r"'xs'.*feature size 2"):
        jaxrnn.RNN(cell).apply(params, jnp.ones((B, T, 5, 5, 4)))
    assert jaxrnn.ConvLSTM(3, kernel_size=[3, 3]) == cell  # lists normalised to hashable tuples
