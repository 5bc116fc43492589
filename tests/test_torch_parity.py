"""Exact numerical parity with PyTorch nn.RNN / nn.LSTM / nn.GRU on converted weights.

Outputs, final states and gradients (w.r.t. every parameter and the inputs) on unpadded and on padded
batches (PyTorch side: pack_padded_sequence), forward, bidirectional and 1-3 layers, with and without
biases, batch_first or not, with and without an initial state.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jaxrnn
from tests.torch_reference import KINDS, compare, make_module

# float32 round-off: outputs are O(1); gradients are sums over T*B terms, so a relative bound.
OUT_ATOL = 2e-6
GRAD_RTOL = 2e-6


def _assert_parity(errs: dict[str, float]) -> None:
    assert errs["output"] < OUT_ATOL, errs
    assert errs["state"] < OUT_ATOL, errs
    assert errs["loss"] < 1e-5, errs
    assert errs["grad_params"] < GRAD_RTOL * max(1.0, errs["grad_params_scale"]) * 10, errs
    assert errs["grad_input"] < GRAD_RTOL * max(1.0, errs["grad_input_scale"]) * 10, errs


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize(
    "num_layers,bidirectional", [(1, False), (1, True), (2, False), (2, True), (3, True)]
)
@pytest.mark.parametrize("padded", [False, True], ids=["full", "packed"])
def test_parity_outputs_states_and_gradients(kind: str, num_layers: int, bidirectional: bool, padded: bool) -> None:
    errs = compare(kind, num_layers=num_layers, bidirectional=bidirectional, padded=padded)
    _assert_parity(errs)


@pytest.mark.parametrize("kind", list(KINDS))
def test_parity_without_bias_time_major_with_initial_state(kind: str) -> None:
    errs = compare(
        kind, num_layers=2, bidirectional=True, bias=False, batch_first=False, with_initial_state=True
    )
    _assert_parity(errs)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_parity_single_sequence_long(kind: str) -> None:
    errs = compare(kind, num_layers=1, batch=1, steps=200, hidden_size=32, padded=False)
    _assert_parity(errs)


@pytest.mark.parametrize(
    "module_cls,kw",
    [
        (torch.nn.RNNCell, {"nonlinearity": "tanh"}),
        (torch.nn.RNNCell, {"nonlinearity": "relu"}),
        (torch.nn.LSTMCell, {}),
        (torch.nn.GRUCell, {}),
    ],
)
def test_cell_modules_convert_to_cells(module_cls: type, kw: dict) -> None:
    torch.manual_seed(0)
    module = module_cls(4, 6, **kw)
    cell, params = jaxrnn.interop.from_torch(module)
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    h = np.random.default_rng(1).standard_normal((3, 6)).astype(np.float32)
    c = np.random.default_rng(2).standard_normal((3, 6)).astype(np.float32)
    if module_cls is torch.nn.LSTMCell:
        th, tc = module(torch.tensor(x), (torch.tensor(h), torch.tensor(c)))
        carry, y = cell.step(params, jaxrnn.LSTMState(h=jnp.asarray(h), c=jnp.asarray(c)), jnp.asarray(x))
        np.testing.assert_allclose(np.asarray(carry.c), tc.detach().numpy(), atol=1e-6)
        expected = th
    else:
        expected = module(torch.tensor(x), torch.tensor(h))
        carry, y = cell.step(params, jnp.asarray(h), jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(y), expected.detach().numpy(), atol=1e-6)


def test_converted_stacked_keeps_torch_dropout() -> None:
    module = make_module("lstm", input_size=3, hidden_size=4, num_layers=3, dropout=0.25)
    layer, _ = jaxrnn.interop.from_torch(module)
    assert isinstance(layer, jaxrnn.Stacked) and layer.dropout == 0.25 and len(layer.layers) == 3


def test_torch_state_round_trip() -> None:
    module = make_module("lstm", input_size=3, hidden_size=4, num_layers=2, bidirectional=True)
    layer, params = jaxrnn.interop.from_torch(module)
    h0 = np.random.default_rng(0).standard_normal((4, 2, 4)).astype(np.float32)
    c0 = np.random.default_rng(1).standard_normal((4, 2, 4)).astype(np.float32)
    carry = jaxrnn.interop.from_torch_state(layer, torch.tensor(h0), torch.tensor(c0))
    h, c = jaxrnn.interop.to_torch_state(layer, carry)
    np.testing.assert_array_equal(np.asarray(h), h0)
    np.testing.assert_array_equal(np.asarray(c), c0)


def test_library_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = "import sys, jaxrnn, jaxrnn.interop; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_jitted_converted_layer_matches_eager() -> None:
    module = make_module("gru", input_size=3, hidden_size=5, num_layers=2, bidirectional=True)
    layer, params = jaxrnn.interop.from_torch(module)
    xs = jax.random.normal(jax.random.key(0), (2, 6, 3))
    lengths = jnp.array([6, 2])
    eager = layer.apply(params, xs, lengths=lengths)
    jitted = jax.jit(layer.apply)(params, xs, lengths=lengths)
    for a, b in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)


@pytest.mark.skipif(
    jax.default_backend() != "cpu" or jaxrnn.kernels.cpu_recurrence.unavailable_reason() is not None,
    reason="the CPU kernel needs the CPU backend and a C++ compiler",
)
@pytest.mark.parametrize("kind", ["rnn_tanh", "rnn_relu", "lstm", "gru"])
def test_parity_on_the_cpu_kernel(kind: str, monkeypatch) -> None:
    """Unpadded float32 layers of 16k units take `jaxrnn.kernels.cpu_recurrence` by default: PyTorch's
    outputs, states and gradients through it, deep, bidirectional, from an initial state."""
    from jaxrnn.kernels import cpu_recurrence

    ran = []
    for name in ("lstm_forward", "lstm_backward", "gru_forward", "gru_backward", "elman_forward", "elman_backward"):
        real = getattr(cpu_recurrence, name)
        monkeypatch.setattr(cpu_recurrence, name, lambda *a, _real=real, _name=name, **k: ran.append(_name) or _real(*a, **k))
    errs = compare(kind, num_layers=2, bidirectional=True, padded=False, with_initial_state=True, hidden_size=32, steps=9)
    _assert_parity(errs)
    family = kind if kind in ("lstm", "gru") else "elman"
    assert {f"{family}_forward", f"{family}_backward"} <= set(ran), ran
