"""What every sequence model shares: the wrapped layer's validation, its time axis, its parameter split.

A model is an immutable, hashable config (like the layers) holding one jaxrnn layer. It follows the
layer protocol: ``init(key, input_size) -> params`` and ``apply(params, xs, *, lengths=None,
carry=None, key=None) -> (outputs, final_carry)``, with params ``{"layer": ..., "head": ...}``.
The layer is used by duck typing, so `RNN`, `Bidirectional`, `Stacked` and any future layer with
``init`` / ``apply`` / ``initial_carry`` / ``output_size`` work.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax

from jaxrnn._typing import Carry, Params, PRNGKey
from jaxrnn.models.dense import Dense

_LAYER_METHODS = ("init", "apply", "initial_carry", "output_size")


def check_layer(fn: str, layer: Any) -> None:
    """Raises TypeError unless `layer` has the jaxrnn layer protocol."""
    missing = [m for m in _LAYER_METHODS if not hasattr(layer, m)]
    if missing:
        raise TypeError(
            f"{fn}: argument 'layer' must be a jaxrnn layer (with {', '.join(_LAYER_METHODS)}), "
            f"got {type(layer).__name__} lacking {missing}"
        )


def is_time_major(layer: Any) -> bool:
    """Whether `layer` takes ``[T, *batch, F]`` inputs (layers without the flag are batch-major)."""
    return bool(getattr(layer, "time_major", False))


def check_model_params(fn: str, params: Any, keys: tuple[str, ...]) -> Params:
    """Raises ValueError unless `params` is a dict with exactly `keys` (what the model's `init` returns)."""
    if not isinstance(params, dict) or set(params) != set(keys):
        got = sorted(params) if isinstance(params, dict) else type(params).__name__
        raise ValueError(f"{fn}: argument 'params' must be the dict returned by init, with keys {list(keys)}; got {got}")
    return params


@dataclasses.dataclass(frozen=True)
class LayerHead:
    """A layer and a dense read-out of size `head_size`: params ``{"layer": ..., "head": {"w", "b"}}``.

    The shared base of `PooledHead` (many-to-one) and `StepwiseHead` (many-to-many).
    """

    layer: Any

    def __post_init__(self) -> None:
        check_layer(type(self).__name__, self.layer)

    @property
    def head_size(self) -> int:
        raise NotImplementedError

    @property
    def head(self) -> Dense:
        return Dense(self.head_size)

    def init(self, key: PRNGKey, input_size: int) -> Params:
        """Parameters for inputs with `input_size` features."""
        k_layer, k_head = jax.random.split(key)
        return {"layer": self.layer.init(k_layer, input_size), "head": self.head.init(k_head, self.layer.output_size)}

    def initial_carry(self, params: Params, batch_shape: tuple[int, ...] = ()) -> Carry:
        return self.layer.initial_carry(params["layer"], batch_shape)
