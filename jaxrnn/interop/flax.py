"""Convert Flax linen ``LSTMCell`` / ``OptimizedLSTMCell`` / ``GRUCell`` / ``SimpleCell`` /
``MGUCell`` / ``ConvLSTMCell`` parameters.

Flax keeps one Dense per gate (``ii, if, ig, io`` on the input, ``hi, hf, hg, ho`` on the hidden
state, kernels ``[in, H]``); jaxrnn concatenates them along the output axis in the same gate order.
``ConvLSTMCell`` keeps two convolutions in gate order ``i, g, f, o`` and adds 1 to the forget gate in
its forward pass; the conversion reorders the blocks to ``i, f, g, o`` and folds the 1 into ``b``.
Flax's LSTM carries are ``(c, h)``; jaxrnn's are ``LSTMState(h, c)``: use `carry_from_flax` /
`carry_to_flax`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxrnn._typing import Carry, Params
from jaxrnn.cells import GRU, LSTM, MGU, Cell, ConvLSTM, LSTMState, SimpleRNN


def _concat(tree: dict, names: list[str], leaf: str) -> jax.Array:
    return jnp.concatenate([jnp.asarray(tree[n][leaf]) for n in names], axis=-1)


def _check_defaults(module: Any, **expected: Any) -> None:
    for attr, value in expected.items():
        if getattr(module, attr, value) is not value:
            raise NotImplementedError(
                f"from_flax: {type(module).__name__} with a non-default '{attr}' has no jaxrnn equivalent"
            )


def from_flax(module: Any, variables: Any) -> tuple[Cell, Params]:
    """Returns ``(cell, params)`` equal to the Flax linen cell `module` with `variables`.

    Args:
      module: a ``flax.linen`` ``LSTMCell``, ``OptimizedLSTMCell``, ``GRUCell``, ``SimpleCell``,
        ``MGUCell`` (default activations; ``reset_gate=True``, giving ``MGU(H, reset_after=True)``)
        or ``ConvLSTMCell`` (stride 1, ``SAME`` padding).
      variables: what ``module.init`` returned (``{"params": ...}``) or the ``params`` dict itself.

    Example::

        flax_cell = nn.LSTMCell(64)
        variables = flax_cell.init(key, flax_cell.initialize_carry(key, x.shape), x)
        cell, params = jaxrnn.interop.from_flax(flax_cell, variables)
        ys, carry = jaxrnn.RNN(cell).apply(params, xs)   # == nn.RNN(flax_cell).apply(variables, xs)
    """
    tree = variables.get("params", variables) if isinstance(variables, dict) else None
    if tree is None:
        raise TypeError(f"from_flax: argument 'variables' must be a dict of parameters, got {type(variables).__name__}")
    kind = type(module).__name__
    hidden = int(module.features)
    leaves = jax.tree.leaves(tree)
    dtype = jnp.asarray(leaves[0]).dtype if leaves else jnp.float32
    if kind in ("LSTMCell", "OptimizedLSTMCell"):
        _check_defaults(module, gate_fn=jax.nn.sigmoid, activation_fn=jnp.tanh)
        gates = ["i", "f", "g", "o"]
        cell: Cell = LSTM(hidden, dtype=dtype)
        params = {
            "w_ih": _concat(tree, [f"i{g}" for g in gates], "kernel"),
            "w_hh": _concat(tree, [f"h{g}" for g in gates], "kernel"),
            "b": _concat(tree, [f"h{g}" for g in gates], "bias"),
        }
    elif kind == "GRUCell":
        _check_defaults(module, gate_fn=jax.nn.sigmoid, activation_fn=jnp.tanh)
        cell = GRU(hidden, dtype=dtype)
        params = {
            "w_ih": _concat(tree, ["ir", "iz", "in"], "kernel"),
            "w_hh": _concat(tree, ["hr", "hz", "hn"], "kernel"),
            "b": _concat(tree, ["ir", "iz", "in"], "bias"),
            "b_hn": jnp.asarray(tree["hn"]["bias"]),
        }
    elif kind == "SimpleCell":
        if getattr(module, "residual", False):
            raise NotImplementedError("from_flax: SimpleCell(residual=True) has no jaxrnn equivalent")
        activations = {jnp.tanh: "tanh", jax.nn.relu: "relu"}
        if module.activation_fn not in activations:
            raise NotImplementedError(f"from_flax: SimpleCell activation {module.activation_fn} is not tanh or relu")
        cell = SimpleRNN(hidden, activation=activations[module.activation_fn], dtype=dtype)
        params = {
            "w_ih": jnp.asarray(tree["i"]["kernel"]),
            "w_hh": jnp.asarray(tree["h"]["kernel"]),
            "b": jnp.asarray(tree["i"]["bias"]),
        }
    elif kind == "MGUCell":
        _check_defaults(module, gate_fn=jax.nn.sigmoid, activation_fn=jnp.tanh, reset_gate=True)
        cell = MGU(hidden, reset_after=True, dtype=dtype)
        params = {
            "w_ih": _concat(tree, ["if", "in"], "kernel"),
            "w_hh": _concat(tree, ["hf", "hn"], "kernel"),
            "b": _concat(tree, ["if", "in"], "bias"),
            "b_hn": jnp.asarray(tree["hn"]["bias"]),
        }
    elif kind == "ConvLSTMCell":
        cell, params = _from_flax_conv_lstm(module, tree, hidden, dtype)
    else:
        raise TypeError(
            "from_flax: argument 'module' must be a flax.linen LSTMCell, OptimizedLSTMCell, GRUCell, "
            f"SimpleCell, MGUCell or ConvLSTMCell, got {kind}"
        )
    cell.check_params("from_flax", params)
    return cell, params


def _from_flax_conv_lstm(module: Any, tree: dict, hidden: int, dtype: Any) -> tuple[Cell, Params]:
    strides = module.strides
    if strides is not None and any(int(s) != 1 for s in (strides if isinstance(strides, (tuple, list)) else [strides])):
        raise NotImplementedError(f"from_flax: ConvLSTMCell with strides {strides} has no jaxrnn equivalent (stride 1 only)")
    if not isinstance(module.padding, str) or module.padding.upper() != "SAME":
        raise NotImplementedError(
            f"from_flax: ConvLSTMCell with padding {module.padding!r} has no jaxrnn equivalent ('SAME' only)"
        )
    kernel_size = tuple(int(k) for k in module.kernel_size)
    F = hidden

    def reorder(a: jax.Array) -> jax.Array:  # Flax's [i, g, f, o] blocks as [i, f, g, o]
        i, g, f, o = jnp.split(jnp.asarray(a), 4, axis=-1)
        return jnp.concatenate([i, f, g, o], axis=-1)

    bias = jnp.zeros((4 * F,), dtype)
    for conv in ("ih", "hh"):
        if "bias" in tree[conv]:
            bias = bias + reorder(tree[conv]["bias"])
    cell = ConvLSTM(F, kernel_size=kernel_size, dtype=dtype)
    params = {
        "w_ih": reorder(tree["ih"]["kernel"]),
        "w_hh": reorder(tree["hh"]["kernel"]),
        "b": bias.at[F : 2 * F].add(1.0),
    }
    return cell, params


def carry_from_flax(cell: Cell, carry: Any) -> Carry:
    """A Flax carry as a jaxrnn carry (swaps Flax's LSTM ``(c, h)`` into ``LSTMState(h, c)``)."""
    if isinstance(cell, (LSTM, ConvLSTM)):
        c, h = carry
        return LSTMState(h=h, c=c)
    return carry


def carry_to_flax(cell: Cell, carry: Carry) -> Any:
    """A jaxrnn carry as a Flax carry (LSTM, ConvLSTM: ``(c, h)``)."""
    if isinstance(cell, (LSTM, ConvLSTM)):
        return (carry.c, carry.h)
    return carry
