"""`Embedding`: a lookup table from token ids to vectors, the input side of a language model."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn import _checks
from jaxrnn._typing import Array, Params, PRNGKey


@dataclasses.dataclass(frozen=True)
class Embedding:
    """Token ids ``[...]`` -> vectors ``[..., features]`` by row lookup in a ``[vocab, features]`` table.

    The table starts as N(0, 1) entries (as PyTorch ``nn.Embedding``), which keeps the first
    layer's pre-activations at unit scale with the Glorot input kernels of the cells.

    Params: ``{"table": [vocab_size, features]}``.
    """

    vocab_size: int
    features: int
    _: dataclasses.KW_ONLY
    dtype: Any = jnp.float32

    def __post_init__(self) -> None:
        _checks.check_positive_int("Embedding", "vocab_size", self.vocab_size)
        _checks.check_positive_int("Embedding", "features", self.features)
        _checks.check_dtype_like("Embedding", "dtype", self.dtype)

    def init(self, key: PRNGKey) -> Params:
        return {"table": jax.random.normal(key, (self.vocab_size, self.features), self.dtype)}

    def apply(self, params: Params, tokens: Array) -> Array:
        return jnp.take(params["table"], tokens, axis=0)

    def check_tokens(self, fn: str, arg: str, tokens: Any, *, min_ndim: int, layout: str) -> Array:
        """Checks `tokens` is an integer array of rank >= `min_ndim`; checks its range when concrete."""
        if not hasattr(tokens, "shape") or not hasattr(tokens, "dtype"):
            tokens = np.asarray(tokens)
        if not jnp.issubdtype(tokens.dtype, jnp.integer):
            raise TypeError(f"{fn}: argument '{arg}' must hold integer token ids, got dtype {tokens.dtype}")
        if tokens.ndim < min_ndim:
            raise ValueError(f"{fn}: argument '{arg}' must have shape {layout}, got shape {tuple(tokens.shape)}")
        if not isinstance(tokens, jax.core.Tracer) and tokens.size:
            lo, hi = int(np.min(tokens)), int(np.max(tokens))
            if lo < 0 or hi >= self.vocab_size:
                raise ValueError(
                    f"{fn}: argument '{arg}' must hold ids in [0, {self.vocab_size}) (the vocabulary), "
                    f"got values in [{lo}, {hi}]"
                )
        return jnp.asarray(tokens)
