"""Convert PyTorch ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` (and their ``*Cell`` versions) to jaxrnn.

torch is never imported by jaxrnn itself: these functions receive torch objects and read their
tensors, so importing this module does not need torch either.

Mapping (PyTorch stores ``weight_ih`` as [G*H, I] with gates stacked on rows, in the same gate order
as jaxrnn): ``w_ih = weight_ih.T``, ``w_hh = weight_hh.T``; the two biases are merged into ``b``,
except GRU's ``b_hn`` which sits inside the reset product and stays separate. An ``nn.LSTM`` with
``proj_size=P`` becomes ``LSTM(H, proj_size=P)`` with ``w_hr = weight_hr.T``; its ``h`` states
have P units, its ``c`` states H.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from jaxrnn._typing import Array, Carry, Params
from jaxrnn.cells import GRU, LSTM, Cell, LSTMState, SimpleRNN
from jaxrnn.layers import RNN, Bidirectional, Stacked


def _array(tensor: Any) -> np.ndarray:
    return tensor.detach().cpu().numpy()


_TORCH_KINDS = ("RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell")


def _cell_for(module: Any) -> Cell:
    kind = type(module).__name__
    if kind not in _TORCH_KINDS:
        raise TypeError(
            f"from_torch: argument 'module' must be a torch.nn.{', '.join(_TORCH_KINDS)}, got {kind}"
        )
    dtype = jnp.dtype(str(next(module.parameters()).dtype).removeprefix("torch."))
    hidden = int(module.hidden_size)
    bias = bool(module.bias)
    if kind in ("LSTM", "LSTMCell"):
        return LSTM(hidden, proj_size=int(getattr(module, "proj_size", 0)), use_bias=bias, dtype=dtype)
    if kind in ("GRU", "GRUCell"):
        return GRU(hidden, use_bias=bias, dtype=dtype)
    return SimpleRNN(hidden, activation=module.nonlinearity, use_bias=bias, dtype=dtype)


def _convert_weights(
    cell: Cell, w_ih: Any, w_hh: Any, b_ih: Any | None, b_hh: Any | None, w_hr: Any | None = None
) -> Params:
    params = {"w_ih": jnp.asarray(_array(w_ih).T), "w_hh": jnp.asarray(_array(w_hh).T)}
    if w_hr is not None:
        params["w_hr"] = jnp.asarray(_array(w_hr).T)
    if b_ih is not None:
        b_ih, b_hh = _array(b_ih), _array(b_hh)
        if isinstance(cell, GRU):
            H = cell.hidden_size
            params["b"] = jnp.asarray(np.concatenate([b_ih[: 2 * H] + b_hh[: 2 * H], b_ih[2 * H :]]))
            params["b_hn"] = jnp.asarray(b_hh[2 * H :])
        else:
            params["b"] = jnp.asarray(b_ih + b_hh)
    return params


def from_torch(module: Any) -> tuple[Any, Params]:
    """Returns ``(layer_or_cell, params)`` computing exactly what the PyTorch `module` computes.

    * ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` give an `RNN`, a `Bidirectional` (``bidirectional=True``)
      or a `Stacked` (``num_layers > 1``, with the module's inter-layer ``dropout``). The layer always
      takes batch-major ``[B, T, F]`` input, whatever ``batch_first`` says.
    * ``nn.RNNCell`` / ``nn.LSTMCell`` / ``nn.GRUCell`` give a cell.

    Example::

        torch_lstm = torch.nn.LSTM(16, 64, num_layers=2, bidirectional=True, batch_first=True)
        layer, params = jaxrnn.interop.from_torch(torch_lstm)
        ys, carry = layer.apply(params, xs, lengths=lengths)   # == torch_lstm on a packed sequence
        h_n, c_n = jaxrnn.interop.to_torch_state(layer, carry)
    """
    cell = _cell_for(module)
    if type(module).__name__.endswith("Cell"):
        b = (module.bias_ih, module.bias_hh) if module.bias else (None, None)
        return cell, _convert_weights(cell, module.weight_ih, module.weight_hh, *b)

    def direction(layer: int, suffix: str) -> Params:
        get = lambda name: getattr(module, f"{name}_l{layer}{suffix}", None)  # noqa: E731
        return _convert_weights(
            cell, get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh"), get("weight_hr")
        )

    rnn = RNN(cell)
    layers, params = [], []
    for k in range(module.num_layers):
        if module.bidirectional:
            layers.append(Bidirectional(rnn, rnn))
            params.append({"forward": direction(k, ""), "backward": direction(k, "_reverse")})
        else:
            layers.append(rnn)
            params.append(direction(k, ""))
    if module.num_layers == 1:
        return layers[0], params[0]
    stacked = Stacked(layers, dropout=float(module.dropout))
    return stacked, {f"layer_{k}": p for k, p in enumerate(params)}


def _layer_units(layer: Any) -> list[RNN]:
    """The RNNs of a converted layer in PyTorch's state order (layer-major, forward before reverse)."""
    if isinstance(layer, RNN):
        return [layer]
    if isinstance(layer, Bidirectional):
        return [layer.forward, layer.backward]
    if isinstance(layer, Stacked):
        return [u for sub in layer.layers for u in _layer_units(sub)]
    raise TypeError(f"argument 'layer' must be an RNN, Bidirectional or Stacked, got {type(layer).__name__}")


def _flatten_carry(layer: Any, carry: Carry) -> list[Carry]:
    if isinstance(layer, RNN):
        return [carry]
    if isinstance(layer, Bidirectional):
        return list(carry)
    return [c for sub, sc in zip(layer.layers, carry) for c in _flatten_carry(sub, sc)]


def _nest_carry(layer: Any, flat: list[Carry]) -> Carry:
    if isinstance(layer, RNN):
        return flat.pop(0)
    if isinstance(layer, Bidirectional):
        return (flat.pop(0), flat.pop(0))
    return tuple(_nest_carry(sub, flat) for sub in layer.layers)


def to_torch_state(layer: Any, carry: Carry) -> tuple[Array, ...]:
    """A jaxrnn final carry as PyTorch's ``h_n`` (and ``c_n`` for LSTM), each ``[D*L, *batch, H]``
    (``h_n`` ``[D*L, *batch, P]`` for an LSTM with ``proj_size=P``)."""
    flat = _flatten_carry(layer, carry)
    if isinstance(flat[0], LSTMState):
        return jnp.stack([c.h for c in flat]), jnp.stack([c.c for c in flat])
    return (jnp.stack(flat),)


def from_torch_state(layer: Any, h_0: Any, c_0: Any | None = None) -> Carry:
    """PyTorch's ``h_0`` (and ``c_0``) ``[D*L, *batch, H]`` as an initial carry for `layer` (``h_0`` has
    P units for an LSTM with ``proj_size=P``)."""
    h = jnp.asarray(_array(h_0) if hasattr(h_0, "detach") else h_0)
    units = _layer_units(layer)
    if h.shape[0] != len(units):
        raise ValueError(
            f"from_torch_state: argument 'h_0' must have {len(units)} states on its first axis "
            f"(num_layers * directions), got shape {tuple(h.shape)}"
        )
    if isinstance(units[0].cell, LSTM):
        if c_0 is None:
            raise ValueError("from_torch_state: argument 'c_0' is required for an LSTM layer, got None")
        c = jnp.asarray(_array(c_0) if hasattr(c_0, "detach") else c_0)
        flat = [LSTMState(h=h[i], c=c[i]) for i in range(len(units))]
    else:
        flat = [h[i] for i in range(len(units))]
    return _nest_carry(layer, flat)
