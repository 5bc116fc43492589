"""Chrono initialisation of gate biases (Tallec & Ollivier 2018): memory over a chosen time range.

A gated cell's forget gate sets its memory's time constant: with forget activation ``f`` a cell forgets
at rate ``1 - f`` per step, i.e. over about ``1 / (1 - f)`` steps. At ``f = sigmoid(b)`` with ``b = 0`` (a
GRU's default) that is 2 steps, and the gradient through the carry shrinks ~2x per step: at T=100 a
default-initialised GRU's ``||dL/dh_0||`` is ~1e-13 of ``||dL/dh_99||``. Chrono initialisation draws the
forget bias as ``b_f = log(u)``, ``u ~ U[1, T_max - 1]``, so that ``1 / (1 - f) = 1 + u`` spreads the
units' time constants uniformly over ``[2, T_max]``, and, for the LSTM, sets ``b_i = -b_f`` to keep
``i + f`` close to 1.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxrnn import _checks
from jaxrnn._typing import Params, PRNGKey
from jaxrnn.cells import GRU, LSTM, Cell
from jaxrnn.layers import RNN, Bidirectional, Stacked


def chrono_init(layer: Any, params: Params, *, t_max: float, key: PRNGKey) -> Params:
    """Returns `params` with chrono-initialised gate biases for every LSTM / GRU cell in `layer`.

    - LSTM (gates ``[i | f | g | o]``): forget bias ``b_f = log(u)``, ``u ~ U[1, t_max - 1]`` per unit,
      and input bias ``b_i = -b_f``.
    - GRU (gates ``[r | z | n]``, ``h' = (1 - z) n + z h``): the update gate ``z`` keeps the old state,
      so it plays the forget gate's role: ``b_z = log(u)``, ``u ~ U[1, t_max - 1]``.

    Every other parameter is returned unchanged. Cells without gates (SimpleRNN) are rejected, since
    there is nothing to set; in a `Stacked` or `Bidirectional` layer they are left as they are.

    Args:
      layer: a jaxrnn cell, or an `RNN`, `Bidirectional` or `Stacked` layer.
      params: its parameters (from ``layer.init``); must have biases (``use_bias=True``).
      t_max: the longest time dependency the network should start out able to carry (e.g. the
        sequence length); the expected range of memory time constants is ``[2, t_max]``.
      key: random key for the draws.

    Returns:
      New parameters with the same structure, shapes and dtypes.

    Example::

        layer = jaxrnn.RNN(jaxrnn.LSTM(64))
        params = layer.init(jax.random.key(0), input_size=2)
        params = jaxrnn.chrono_init(layer, params, t_max=100, key=jax.random.key(1))

    References:
      Tallec & Ollivier, "Can recurrent neural networks warp time?", ICLR 2018.
    """
    fn = "chrono_init"
    if isinstance(t_max, bool) or not isinstance(t_max, (int, float)) or not t_max >= 2:
        raise ValueError(f"{fn}: argument 't_max' must be a number >= 2 (the longest dependency, in steps), got {t_max!r}")
    _checks.check_key(fn, "key", key)
    cell = layer.cell if isinstance(layer, RNN) else layer
    if isinstance(cell, Cell) and not isinstance(cell, (LSTM, GRU)):
        raise TypeError(f"{fn}: argument 'layer' must contain LSTM or GRU cells (gated), got {type(cell).__name__}")
    return _chrono(fn, layer, params, float(t_max), key)


def _chrono(fn: str, layer: Any, params: Params, t_max: float, key: PRNGKey) -> Params:
    if isinstance(layer, RNN):
        return _chrono(fn, layer.cell, params, t_max, key)
    if isinstance(layer, Bidirectional):
        k_f, k_b = jax.random.split(key)
        return {
            "forward": _chrono(fn, layer.forward, params["forward"], t_max, k_f),
            "backward": _chrono(fn, layer.backward, params["backward"], t_max, k_b),
        }
    if isinstance(layer, Stacked):
        keys = jax.random.split(key, len(layer.layers))
        return {
            name: _chrono(fn, sub, params[name], t_max, k)
            for (name, sub), k in zip(zip((f"layer_{i}" for i in range(len(layer.layers))), layer.layers), keys)
        }
    if isinstance(layer, (LSTM, GRU)):
        return _chrono_cell(fn, layer, params, t_max, key)
    if isinstance(layer, Cell):
        return params  # a gate-less cell inside a composite layer: nothing to set
    raise TypeError(f"{fn}: argument 'layer' must be a jaxrnn cell, RNN, Bidirectional or Stacked, got {type(layer).__name__}")


def _chrono_cell(fn: str, cell: LSTM | GRU, params: Params, t_max: float, key: PRNGKey) -> Params:
    cell.check_params(fn, params)
    if "b" not in params:
        raise ValueError(f"{fn}: argument 'params' must have a bias 'b' ({type(cell).__name__} with use_bias=True), got none")
    H = cell.hidden_size
    b = params["b"]
    log_u = jnp.log(jax.random.uniform(key, (H,), jnp.float32, minval=1.0, maxval=t_max - 1.0)).astype(b.dtype)
    if isinstance(cell, LSTM):
        b = b.at[H : 2 * H].set(log_u).at[:H].set(-log_u)  # forget block, input block
    else:
        b = b.at[H : 2 * H].set(log_u)  # update gate z
    return {**params, "b": b}
