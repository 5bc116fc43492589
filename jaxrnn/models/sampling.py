"""Drawing the next token from logits: temperature and top-k sampling, greedy at temperature 0."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxrnn import _checks
from jaxrnn._typing import Array, PRNGKey


def check_sampling(fn: str, temperature: Any, top_k: Any, vocab_size: int) -> None:
    """Checks `temperature` is a float >= 0 and `top_k` None or an int in [1, vocab_size]."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or temperature < 0:
        raise ValueError(f"{fn}: argument 'temperature' must be a float >= 0, got {temperature!r}")
    if top_k is not None:
        _checks.check_positive_int(fn, "top_k", top_k)
        if top_k > vocab_size:
            raise ValueError(f"{fn}: argument 'top_k' must be at most the vocabulary size {vocab_size}, got {top_k}")


def sample_logits(key: PRNGKey, logits: Array, *, temperature: float = 1.0, top_k: int | None = None) -> Array:
    """Samples one id per row of ``logits [..., V]`` from ``softmax(logits / temperature)``.

    Args:
      key: PRNG key.
      logits: unnormalised log-probabilities over the last axis.
      temperature: divides the logits; < 1 sharpens, > 1 flattens, 0 takes the argmax (greedy).
      top_k: if set, only the k most likely ids can be drawn (Fan, Lewis & Dauphin 2018); ids tied
        with the k-th largest logit are kept too.

    Returns:
      Integer ids with the shape of ``logits`` without its last axis.

    Example::

        token = sample_logits(key, logits, temperature=0.8, top_k=10)

    References:
      Ackley, Hinton & Sejnowski, "A learning algorithm for Boltzmann machines", 1985 (temperature).
      Fan, Lewis & Dauphin, "Hierarchical neural story generation", ACL 2018 (top-k sampling).
    """
    check_sampling("sample_logits", temperature, top_k, logits.shape[-1])
    if top_k is not None:
        kth = jax.lax.top_k(logits, top_k)[0][..., -1:]
        logits = jnp.where(logits < kth, -jnp.inf, logits)
    if temperature == 0:
        return jnp.argmax(logits, axis=-1)
    return jax.random.categorical(key, logits / temperature, axis=-1)
