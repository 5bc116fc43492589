"""`Dense`: the affine read-out ``x @ w + b`` that turns recurrent features into predictions."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from jaxrnn import _checks
from jaxrnn._typing import Array, Params, PRNGKey


@dataclasses.dataclass(frozen=True)
class Dense:
    """An affine map over the last axis, Glorot-uniform weights and zero bias (the Keras defaults).

    Params: ``{"w": [in, features], "b": [features]}``.

    Example::

        head = Dense(10)
        params = head.init(jax.random.key(0), input_size=64)
        logits = head.apply(params, h)            # h: [*batch, 64] -> [*batch, 10]

    References:
      Glorot & Bengio, "Understanding the difficulty of training deep feedforward neural networks",
      AISTATS 2010.
    """

    features: int
    _: dataclasses.KW_ONLY
    dtype: Any = jnp.float32

    def __post_init__(self) -> None:
        _checks.check_positive_int("Dense", "features", self.features)
        _checks.check_dtype_like("Dense", "dtype", self.dtype)

    def init(self, key: PRNGKey, input_size: int) -> Params:
        _checks.check_positive_int("Dense.init", "input_size", input_size)
        w = jax.nn.initializers.glorot_uniform()(key, (input_size, self.features), self.dtype)
        return {"w": w, "b": jnp.zeros((self.features,), self.dtype)}

    def apply(self, params: Params, x: Array) -> Array:
        return x @ params["w"] + params["b"]
