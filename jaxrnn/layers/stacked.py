"""`Stacked`: deep RNNs, each layer's outputs the next layer's inputs."""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp

from jaxrnn import _checks
from jaxrnn._typing import Array, Carry, Params, PRNGKey
from jaxrnn.layers.bidirectional import _check_param_keys, _split_carry


@dataclasses.dataclass(frozen=True)
class Stacked:
    """A deep RNN: a sequence of layers (`RNN`, `Bidirectional`, or another `Stacked`) applied in turn.

    Args:
      layers: the layers, bottom first.
      dropout: probability of zeroing each output element of every layer but the last (as in
        PyTorch ``nn.LSTM(dropout=...)``). It is applied only when `apply` gets a ``key``.
      residual: add each layer's input to its output, for every layer after the first (Wu et al.
        2016, GNMT); those layers must keep the feature size.

    Params: ``{"layer_0": ..., "layer_1": ...}``. Carry: a tuple with one carry per layer.

    Example::

        deep = jaxrnn.Stacked([jaxrnn.RNN(jaxrnn.LSTM(256))] * 3, dropout=0.2)
        params = deep.init(jax.random.key(0), input_size=32)
        ys, carries = deep.apply(params, xs, lengths=lengths, key=dropout_key)   # training
        ys, carries = deep.apply(params, xs, lengths=lengths)                    # inference

    References:
      Graves, Mohamed & Hinton, "Speech recognition with deep recurrent neural networks", ICASSP 2013.
      Zaremba, Sutskever & Vinyals, "Recurrent neural network regularization", 2014 (dropout between layers).
    """

    layers: Sequence[Any]
    _: dataclasses.KW_ONLY
    dropout: float = 0.0
    residual: bool = False

    def __post_init__(self) -> None:
        layers = tuple(self.layers)
        object.__setattr__(self, "layers", layers)
        if not layers:
            raise ValueError("Stacked: argument 'layers' must hold at least one layer, got none")
        for i, layer in enumerate(layers):
            if not all(hasattr(layer, m) for m in ("init", "apply", "initial_carry", "output_size")):
                raise TypeError(f"Stacked: argument 'layers[{i}]' must be a jaxrnn layer, got {type(layer).__name__}")
        majors = {getattr(layer, "time_major", False) for layer in layers}
        if len(majors) != 1:
            raise ValueError("Stacked: argument 'layers' must share one time_major setting, got a mix")
        _checks.check_probability("Stacked", "dropout", self.dropout)
        if not isinstance(self.residual, bool):
            raise TypeError(f"Stacked: argument 'residual' must be a bool, got {self.residual!r}")

    @property
    def time_major(self) -> bool:
        return getattr(self.layers[0], "time_major", False)

    @property
    def output_size(self) -> int:
        return self.layers[-1].output_size

    def _names(self) -> list[str]:
        return [f"layer_{i}" for i in range(len(self.layers))]

    def init(self, key: PRNGKey, input_size: int) -> Params:
        params = {}
        keys = jax.random.split(key, len(self.layers))
        size = input_size
        for i, (name, layer, k) in enumerate(zip(self._names(), self.layers, keys)):
            if self.residual and i > 0 and layer.output_size != size:
                raise ValueError(
                    f"Stacked: residual=True needs layers[{i}] to keep the feature size {size}, "
                    f"got output size {layer.output_size}"
                )
            params[name] = layer.init(k, size)
            size = layer.output_size
        return params

    def initial_carry(self, params: Params, batch_shape: tuple[int, ...] = ()) -> Carry:
        return tuple(layer.initial_carry(params[n], batch_shape) for n, layer in zip(self._names(), self.layers))

    def apply(
        self,
        params: Params,
        xs: Array,
        *,
        lengths: Array | None = None,
        carry: Carry | None = None,
        key: PRNGKey | None = None,
        probe: tuple[Any, ...] | None = None,
    ) -> tuple[Array, Carry]:
        """Same arguments and layouts as `RNN.apply`; ``carry`` and ``probe`` hold one entry per
        layer and ``key`` (optional) switches on dropout and feeds any stochastic sub-layer."""
        fn = "Stacked.apply"
        names = self._names()
        _check_param_keys(fn, params, tuple(names))
        carries = _split_carry(fn, carry, len(self.layers))
        probes = _split_carry(fn, probe, len(self.layers), arg="probe")
        if key is not None:
            _checks.check_key(fn, "key", key)
        n = len(self.layers)
        layer_keys = [None] * n if key is None else list(jax.random.split(key, 2 * n))
        finals = []
        h = xs
        for i, (name, layer) in enumerate(zip(names, self.layers)):
            out, final = layer.apply(
                params[name], h, lengths=lengths, carry=carries[i], key=layer_keys[i], probe=probes[i]
            )
            if self.residual and i > 0:
                out = out + h
            if self.dropout > 0.0 and key is not None and i < n - 1:
                keep = jax.random.bernoulli(layer_keys[n + i], 1.0 - self.dropout, out.shape)
                out = jnp.where(keep, out / (1.0 - self.dropout), 0.0).astype(out.dtype)
            h = out
            finals.append(final)
        return h, tuple(finals)
