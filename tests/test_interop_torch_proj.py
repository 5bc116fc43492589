"""`from_torch` for ``nn.LSTM(proj_size=P)``: outputs, packed variable lengths, states and gradients."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jaxrnn

I, H, P, B, T = 3, 6, 2, 3, 5

# torch falls back from oneDNN for projected LSTMs and says so; the fallback is what we compare with
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections:UserWarning")


def _packed_run(module: torch.nn.LSTM, xs: np.ndarray, lengths: np.ndarray, state=None):
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        torch.tensor(xs), torch.tensor(lengths), batch_first=True, enforce_sorted=False
    )
    out, (h_n, c_n) = module(packed, state)
    ys, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=xs.shape[1])
    return ys, h_n, c_n


@pytest.mark.parametrize("num_layers, bidirectional", [(1, False), (2, True)])
def test_proj_lstm_matches_torch_with_lengths_and_initial_state(num_layers, bidirectional):
    torch.manual_seed(0)
    module = torch.nn.LSTM(I, H, proj_size=P, num_layers=num_layers, bidirectional=bidirectional, batch_first=True)
    layer, params = jaxrnn.interop.from_torch(module)
    D = 2 if bidirectional else 1
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((B, T, I)).astype(np.float32)
    lengths = np.array([T, 2, 4])
    h0 = rng.standard_normal((D * num_layers, B, P)).astype(np.float32)
    c0 = rng.standard_normal((D * num_layers, B, H)).astype(np.float32)

    with torch.no_grad():
        ref_ys, ref_h, ref_c = _packed_run(module, xs, lengths, (torch.tensor(h0), torch.tensor(c0)))
    carry0 = jaxrnn.interop.from_torch_state(layer, h0, c0)
    ys, carry = jax.jit(layer.apply)(params, jnp.asarray(xs), lengths=jnp.asarray(lengths), carry=carry0)
    h_n, c_n = jaxrnn.interop.to_torch_state(layer, carry)

    assert ys.shape == (B, T, D * P) and h_n.shape == (D * num_layers, B, P) and c_n.shape == (D * num_layers, B, H)
    np.testing.assert_allclose(ys, ref_ys.numpy(), atol=2e-6)
    np.testing.assert_allclose(h_n, ref_h.numpy(), atol=2e-6)
    np.testing.assert_allclose(c_n, ref_c.numpy(), atol=2e-6)


def test_proj_lstm_gradients_match_torch():
    torch.manual_seed(1)
    module = torch.nn.LSTM(I, H, proj_size=P, batch_first=True, bias=False)
    layer, params = jaxrnn.interop.from_torch(module)
    assert sorted(params) == ["w_hh", "w_hr", "w_ih"] and params["w_hr"].shape == (H, P)
    xs = np.random.default_rng(1).standard_normal((B, T, I)).astype(np.float32)
    ys, _ = module(torch.tensor(xs))
    (ys**2).sum().backward()
    grads = jax.grad(lambda p: jnp.sum(layer.apply(p, jnp.asarray(xs))[0] ** 2))(params)
    np.testing.assert_allclose(grads["w_hr"], module.weight_hr_l0.grad.numpy().T, atol=1e-5)
    np.testing.assert_allclose(grads["w_hh"], module.weight_hh_l0.grad.numpy().T, atol=1e-5)
    np.testing.assert_allclose(grads["w_ih"], module.weight_ih_l0.grad.numpy().T, atol=1e-5)


def test_from_torch_state_rejects_wrong_layer_count():
    module = torch.nn.LSTM(I, H, proj_size=P, num_layers=2)
    layer, _ = jaxrnn.interop.from_torch(module)
    with pytest.raises(ValueError, match="h_0"):
        jaxrnn.interop.from_torch_state(layer, np.zeros((3, B, P), np.float32), np.zeros((3, B, H), np.float32))
