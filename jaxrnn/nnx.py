"""Flax NNX modules around the functional core: jaxrnn layers holding their parameters as ``nnx.Param``.

Each module keeps a jaxrnn layer config (`.layer`) and its parameter dict as ``nnx.Param`` leaves;
calling it runs exactly ``layer.apply(params, xs, ...)``, so outputs and gradients equal the
functional form, and the modules drop into Flax NNX models, ``nnx.jit``, ``nnx.grad`` and
``nnx.Optimizer`` like ``nnx.Linear``.

Example::

    from flax import nnx
    import jaxrnn.nnx as rnx

    class Tagger(nnx.Module):
        def __init__(self, rngs):
            self.rnn = rnx.Bidirectional(rnx.LSTM(8, 32, rngs=rngs), rnx.LSTM(8, 32, rngs=rngs))
            self.out = nnx.Linear(64, 5, rngs=rngs)

        def __call__(self, xs, lengths):
            ys, _ = self.rnn(xs, lengths=lengths)
            return self.out(ys)

    model = Tagger(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)

`Layer` wraps any jaxrnn layer or model (including ones built by `jaxrnn.interop`);
`RNN`, `LSTM`, `GRU` and `SimpleRNN` build the common ones; `Bidirectional` and `Stacked` compose
other modules, whose parameters stay in those modules.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

import jaxrnn
from jaxrnn import _checks
from jaxrnn._typing import Array, Carry, Params, PRNGKey
from jaxrnn.cells.base import Cell
from jaxrnn.models.streaming import layer_step

__all__ = ["GRU", "LSTM", "RNN", "Bidirectional", "Layer", "Module", "SimpleRNN", "Stacked"]


def _dropout_stream(rngs: nnx.Rngs | nnx.RngStream | None) -> nnx.RngStream | None:
    """The ``dropout`` stream of `rngs` (Flax falls back to ``default``), forked; None if it has none."""
    if rngs is None:
        return None
    if isinstance(rngs, nnx.RngStream):
        return rngs.fork()
    try:
        return rngs["dropout"].fork()
    except (KeyError, AttributeError):
        return None


def _unwrap(tree: Any) -> Params:
    return jax.tree.map(lambda v: v[...], tree, is_leaf=lambda x: isinstance(x, nnx.Variable))


class Module(nnx.Module):
    """Base of the jaxrnn NNX modules: runs `self.layer` on `self.functional_params()`.

    Subclasses provide the `layer` config and `functional_params`. When the layer is stochastic
    (e.g. a `Stacked` with dropout), calls draw a key from the module's ``dropout`` rng stream
    unless ``deterministic`` (``model.eval()`` sets it) or an explicit ``key`` is given.
    """

    layer: Any
    deterministic: bool
    rngs: nnx.RngStream | None

    def _init_rngs(self, rngs: nnx.Rngs | nnx.RngStream | None, deterministic: bool, needs_key: bool) -> None:
        if not isinstance(deterministic, bool):
            raise TypeError(f"{type(self).__name__}: argument 'deterministic' must be a bool, got {deterministic!r}")
        self.deterministic = deterministic
        self.rngs = nnx.data(_dropout_stream(rngs))
        if needs_key and self.rngs is None and not deterministic:
            raise ValueError(
                f"{type(self).__name__}: a stochastic layer (dropout) needs argument 'rngs' with a 'dropout' or "
                "'default' stream, or deterministic=True"
            )

    def functional_params(self) -> Params:
        """The plain parameter dict the functional `self.layer.apply` takes (arrays, no Variables)."""
        raise NotImplementedError

    def __call__(
        self,
        xs: Array,
        *,
        lengths: Array | None = None,
        carry: Carry | None = None,
        key: PRNGKey | None = None,
    ) -> tuple[Array, Carry]:
        """``self.layer.apply(params, xs, lengths=..., carry=..., key=...)``: ``(outputs, final_carry)``."""
        if key is None and not self.deterministic and self.rngs is not None:
            key = self.rngs()
        return self.layer.apply(self.functional_params(), xs, lengths=lengths, carry=carry, key=key)

    def initial_carry(self, batch_shape: tuple[int, ...] = ()) -> Carry:
        return self.layer.initial_carry(self.functional_params(), tuple(batch_shape))

    def step(self, carry: Carry, x: Array) -> tuple[Carry, Array]:
        """One time step of a causal layer (see `jaxrnn.models.layer_step`): ``(new_carry, y)``."""
        return layer_step(self.layer, self.functional_params(), carry, x)


def _stochastic(layer: Any) -> bool:
    return float(getattr(layer, "dropout", 0.0) or 0.0) > 0.0


class Layer(Module):
    """Any jaxrnn layer or model with its parameters as ``nnx.Param`` leaves.

    Args:
      layer: a jaxrnn layer or model config (``jaxrnn.RNN(jaxrnn.GRU(64))``, a `jaxrnn.models`
        head, ...).
      in_features: the input size handed to ``layer.init`` (None for models that take none, such
        as a `LanguageModel`).
      rngs: ``nnx.Rngs``; its ``params`` stream initialises the parameters (exactly
        ``layer.init(rngs.params(), in_features)``) and its ``dropout`` stream feeds dropout.
      params: existing parameters to wrap instead of initialising (e.g. from `jaxrnn.interop`).
      deterministic: switch dropout off.

    Example::

        layer, params = jaxrnn.interop.from_torch(torch_lstm)
        module = jaxrnn.nnx.Layer(layer, params=params)
        ys, carry = module(xs, lengths=lengths)
    """

    def __init__(
        self,
        layer: Any,
        in_features: int | None = None,
        *,
        rngs: nnx.Rngs | None = None,
        params: Params | None = None,
        deterministic: bool = False,
    ):
        name = type(self).__name__
        if not all(hasattr(layer, m) for m in ("init", "apply")):
            raise TypeError(f"{name}: argument 'layer' must be a jaxrnn layer or model, got {type(layer).__name__}")
        if params is None:
            if rngs is None:
                raise ValueError(f"{name}: argument 'rngs' is needed to initialise parameters (or pass 'params')")
            key = rngs.params()
            params = layer.init(key) if in_features is None else layer.init(key, in_features)
        self.layer = layer
        self.params = nnx.data(jax.tree.map(nnx.Param, params))
        self._init_rngs(rngs, deterministic, _stochastic(layer))

    def functional_params(self) -> Params:
        return _unwrap(self.params)


class RNN(Layer):
    """A `jaxrnn.RNN` over `cell` as an NNX module: ``RNN(jaxrnn.GRU(64), 8, rngs=rngs)``.

    Keyword arguments ``reverse``, ``unroll``, ``remat``, ``time_major`` go to `jaxrnn.RNN`.
    """

    def __init__(self, cell: Cell, in_features: int, *, rngs: nnx.Rngs, **rnn_kwargs: Any):
        _checks.check_positive_int(type(self).__name__, "in_features", in_features)
        super().__init__(jaxrnn.RNN(cell, **rnn_kwargs), in_features, rngs=rngs)


class LSTM(RNN):
    """LSTM layer (Hochreiter & Schmidhuber 1997): ``LSTM(in_features, hidden_size, rngs=rngs)``.

    Cell options (``forget_bias``, ``use_bias``, ``dtype``) go to `jaxrnn.LSTM`; ``reverse``,
    ``unroll``, ``remat``, ``time_major`` to `jaxrnn.RNN`.
    """

    def __init__(self, in_features: int, hidden_size: int, *, rngs: nnx.Rngs, forget_bias: float = 1.0,
                 use_bias: bool = True, dtype: Any = jnp.float32, **rnn_kwargs: Any):
        cell = jaxrnn.LSTM(hidden_size, forget_bias=forget_bias, use_bias=use_bias, dtype=dtype)
        super().__init__(cell, in_features, rngs=rngs, **rnn_kwargs)


class GRU(RNN):
    """GRU layer (Cho et al. 2014, PyTorch form): ``GRU(in_features, hidden_size, rngs=rngs)``."""

    def __init__(self, in_features: int, hidden_size: int, *, rngs: nnx.Rngs, use_bias: bool = True,
                 dtype: Any = jnp.float32, **rnn_kwargs: Any):
        super().__init__(jaxrnn.GRU(hidden_size, use_bias=use_bias, dtype=dtype), in_features, rngs=rngs, **rnn_kwargs)


class SimpleRNN(RNN):
    """Elman layer (Elman 1990): ``SimpleRNN(in_features, hidden_size, rngs=rngs, activation="tanh")``."""

    def __init__(self, in_features: int, hidden_size: int, *, rngs: nnx.Rngs, activation: str = "tanh",
                 use_bias: bool = True, dtype: Any = jnp.float32, **rnn_kwargs: Any):
        cell = jaxrnn.SimpleRNN(hidden_size, activation=activation, use_bias=use_bias, dtype=dtype)
        super().__init__(cell, in_features, rngs=rngs, **rnn_kwargs)


def _check_module(fn: str, arg: str, module: Any) -> None:
    if not isinstance(module, Module):
        raise TypeError(f"{fn}: argument '{arg}' must be a jaxrnn.nnx module, got {type(module).__name__}")


class Bidirectional(Module):
    """`jaxrnn.Bidirectional` over two NNX RNN modules (Schuster & Paliwal 1997).

    The `backward` module runs right-to-left within each sequence's length (its ``reverse`` flag is
    set for it). Parameters stay in the two sub-modules.

    Example::

        bi = Bidirectional(LSTM(8, 32, rngs=rngs), LSTM(8, 32, rngs=rngs), merge="concat")
        ys, (c_fwd, c_bwd) = bi(xs, lengths=lengths)      # ys: [batch, T, 64]
    """

    def __init__(self, forward: Module, backward: Module, *, merge: str = "concat"):
        for arg, module in (("forward", forward), ("backward", backward)):
            _check_module("Bidirectional", arg, module)
        self.forward = forward
        self.backward = backward
        self.layer = jaxrnn.Bidirectional(forward.layer, backward.layer, merge=merge)
        self._init_rngs(None, False, False)

    def functional_params(self) -> Params:
        return {"forward": self.forward.functional_params(), "backward": self.backward.functional_params()}


class Stacked(Module):
    """`jaxrnn.Stacked` over NNX modules: a deep RNN with inter-layer dropout and residuals.

    Args:
      layers: jaxrnn NNX modules, bottom first (their output sizes must chain).
      dropout: as in `jaxrnn.Stacked`, drawn from `rngs`' ``dropout`` stream while not deterministic.
      residual: as in `jaxrnn.Stacked`.
      rngs: needed when ``dropout > 0``.
      deterministic: switch dropout off (``model.eval()`` / ``model.train()`` toggle it).

    Example::

        deep = Stacked([GRU(8, 64, rngs=rngs), GRU(64, 64, rngs=rngs)], dropout=0.2, rngs=rngs)
    """

    def __init__(self, layers: Sequence[Module], *, dropout: float = 0.0, residual: bool = False,
                 rngs: nnx.Rngs | None = None, deterministic: bool = False):
        layers = list(layers)
        for i, module in enumerate(layers):
            _check_module("Stacked", f"layers[{i}]", module)
        self.layers = nnx.List(layers)
        self.layer = jaxrnn.Stacked([m.layer for m in layers], dropout=dropout, residual=residual)
        self._init_rngs(rngs, deterministic, dropout > 0)

    def functional_params(self) -> Params:
        return {f"layer_{i}": m.functional_params() for i, m in enumerate(self.layers)}
