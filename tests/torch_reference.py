"""Run PyTorch RNN modules and their jaxrnn conversions side by side (outputs, states, gradients).

Shared by tests/test_torch_parity.py and by `python -m tests.torch_reference`, which prints the
largest parity errors over a grid of configurations (the numbers quoted in the project notes).
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import torch

import jaxrnn

KINDS = {
    "rnn_tanh": lambda **kw: torch.nn.RNN(nonlinearity="tanh", **kw),
    "rnn_relu": lambda **kw: torch.nn.RNN(nonlinearity="relu", **kw),
    "lstm": lambda **kw: torch.nn.LSTM(**kw),
    "gru": lambda **kw: torch.nn.GRU(**kw),
}


def make_module(kind: str, *, input_size: int, hidden_size: int, seed: int = 0, **kw: Any) -> torch.nn.Module:
    torch.manual_seed(seed)
    module = KINDS[kind](input_size=input_size, hidden_size=hidden_size, **kw)
    # PyTorch's default U(+-1/sqrt(H)) biases are small; larger ones exercise the bias mapping harder.
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.startswith("bias"):
                p.uniform_(-1.0, 1.0)
    return module


def torch_run(
    module: torch.nn.Module, x: np.ndarray, lengths: np.ndarray | None, state: tuple | None = None
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...], torch.Tensor]:
    """Runs `module` on batch-major `x` [B, T, F] (packing when `lengths` is given).

    Returns (outputs [B, T, D*H] batch-major, final states, the input tensor that requires grad).
    """
    xt = torch.tensor(x, requires_grad=True)
    inp = xt if module.batch_first else xt.transpose(0, 1)
    if lengths is not None:
        inp = torch.nn.utils.rnn.pack_padded_sequence(
            inp, torch.tensor(lengths), batch_first=module.batch_first, enforce_sorted=False
        )
    out, st = module(inp, state) if state is not None else module(inp)
    if lengths is not None:
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=module.batch_first, total_length=x.shape[1])
    if not module.batch_first:
        out = out.transpose(0, 1)
    return out, (st if isinstance(st, tuple) else (st,)), xt


def torch_grads_as_jaxrnn(module: torch.nn.Module) -> Any:
    """Maps the .grad of every torch parameter into jaxrnn's parameter tree.

    jaxrnn merges ``b = bias_ih + bias_hh`` (GRU: all but the n block), whose gradient equals each of
    the two torch bias gradients; so the bias_hh gradients that merge are zeroed before reusing the
    converter's (already output-tested) structural mapping. GRU's ``b_hn`` keeps bias_hh's n block.
    """
    shadow = copy.deepcopy(module)
    hidden = module.hidden_size
    with torch.no_grad():
        for (name, p), (_, q) in zip(module.named_parameters(), shadow.named_parameters()):
            g = p.grad.clone()
            if name.startswith("bias_hh"):
                if isinstance(module, torch.nn.GRU):
                    g[: 2 * hidden] = 0.0
                else:
                    g.zero_()
            q.copy_(g)
    return jaxrnn.interop.from_torch(shadow)[1]


def loss_weights(shape_out: tuple, shape_states: list[tuple], seed: int = 1) -> tuple[np.ndarray, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape_out).astype(np.float32), [
        rng.standard_normal(s).astype(np.float32) for s in shape_states
    ]


def compare(
    kind: str,
    *,
    num_layers: int = 1,
    bidirectional: bool = False,
    bias: bool = True,
    batch_first: bool = True,
    padded: bool = True,
    batch: int = 4,
    steps: int = 7,
    input_size: int = 3,
    hidden_size: int = 5,
    with_initial_state: bool = False,
    seed: int = 0,
) -> dict[str, float]:
    """Max abs errors of outputs, final states and gradients (params and inputs) vs PyTorch."""
    module = make_module(
        kind,
        input_size=input_size,
        hidden_size=hidden_size,
        num_layers=num_layers,
        bidirectional=bidirectional,
        bias=bias,
        batch_first=batch_first,
        seed=seed,
    )
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, steps, input_size)).astype(np.float32)
    lengths = rng.integers(1, steps + 1, size=batch) if padded else None
    if lengths is not None:
        lengths[0] = steps  # keep one full-length sequence so padded output has all T steps
    d = 2 if bidirectional else 1
    state = None
    if with_initial_state:
        h0 = rng.standard_normal((d * num_layers, batch, hidden_size)).astype(np.float32)
        c0 = rng.standard_normal((d * num_layers, batch, hidden_size)).astype(np.float32)
        state = (torch.tensor(h0), torch.tensor(c0)) if kind == "lstm" else torch.tensor(h0)

    out, states, xt = torch_run(module, x, lengths, state)
    w_out, w_states = loss_weights(tuple(out.shape), [tuple(s.shape) for s in states])
    loss = (out * torch.tensor(w_out)).sum() + sum((s * torch.tensor(w)).sum() for s, w in zip(states, w_states))
    loss.backward()

    layer, params = jaxrnn.interop.from_torch(module)
    carry = None
    if state is not None:
        carry = jaxrnn.interop.from_torch_state(layer, *(state if isinstance(state, tuple) else (state,)))
    jl = None if lengths is None else jnp.asarray(lengths)

    def jax_loss(params: Any, xs: jax.Array) -> tuple[jax.Array, tuple]:
        ys, final = layer.apply(params, xs, lengths=jl, carry=carry)
        st = jaxrnn.interop.to_torch_state(layer, final)
        value = jnp.sum(ys * w_out) + sum(jnp.sum(s * w) for s, w in zip(st, w_states))
        return value, (ys, st)

    (value, (ys, st)), (g_params, g_x) = jax.jit(jax.value_and_grad(jax_loss, argnums=(0, 1), has_aux=True))(
        params, jnp.asarray(x)
    )
    expected_g = torch_grads_as_jaxrnn(module)
    g_err = max(
        float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in zip(jax.tree.leaves(g_params), jax.tree.leaves(expected_g))
    )
    assert jax.tree.structure(g_params) == jax.tree.structure(expected_g)
    scale = lambda t: float(np.max(np.abs(t)))  # noqa: E731
    return {
        "output": float(np.max(np.abs(np.asarray(ys) - out.detach().numpy()))),
        "state": max(float(np.max(np.abs(np.asarray(a) - b.detach().numpy()))) for a, b in zip(st, states)),
        "loss": abs(float(value) - loss.item()) / max(1.0, abs(loss.item())),
        "grad_params": g_err,
        "grad_params_scale": max(scale(np.asarray(a)) for a in jax.tree.leaves(expected_g)),
        "grad_input": float(np.max(np.abs(np.asarray(g_x) - xt.grad.numpy()))),
        "grad_input_scale": scale(xt.grad.numpy()),
    }


def main() -> None:
    """Prints the largest parity errors over kinds x layers x directions x padding."""
    worst: dict[str, float] = {}
    rows = []
    for kind, layers, bidi, padded in itertools.product(KINDS, (1, 2, 3), (False, True), (False, True)):
        errs = compare(kind, num_layers=layers, bidirectional=bidi, padded=padded, steps=12, hidden_size=16)
        rows.append((kind, layers, bidi, padded, errs))
        for k, v in errs.items():
            worst[k] = max(worst.get(k, 0.0), v)
    print("kind      layers bidi  padded  output    state     grad_params  grad_input")
    for kind, layers, bidi, padded, e in rows:
        print(
            f"{kind:9s} {layers:6d} {bidi!s:5s} {padded!s:7s} {e['output']:.2e}  {e['state']:.2e}  "
            f"{e['grad_params']:.2e}     {e['grad_input']:.2e}"
        )
    print("worst:", {k: f"{v:.2e}" for k, v in worst.items()})


if __name__ == "__main__":
    main()
