"""`Hierarchical`: a lower layer within chunks of k steps (all chunks at once), an upper layer across them."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from jaxrnn import _checks
from jaxrnn._typing import Array, Carry, Params, PRNGKey
from jaxrnn.layers.bidirectional import _check_param_keys, _split_carry

BROADCASTS = (None, "previous", "current")


def _summary(layer: Any, carry: Carry) -> Array:
    """The hidden state `layer` ends on (`jaxrnn.models.pooling.final_hidden`), or a clear error."""
    from jaxrnn.models.pooling import final_hidden  # models build on layers: import at use, not at load

    h = final_hidden(layer, carry)
    if h is None:
        raise TypeError(
            f"Hierarchical: cannot read a final hidden state from a {type(layer).__name__} layer; use an RNN, "
            "a Bidirectional, a non-residual Stacked of them, or a layer with a final_hidden(carry) method"
        )
    return h


@dataclasses.dataclass(frozen=True)
class Hierarchical:
    """Two-level RNN: `lower` reads each chunk of `chunk` steps, `upper` reads the chunk summaries.

    Time is reshaped to ``[chunks, chunk]`` and the chunks become extra batch dims, so the lower
    layer runs over every chunk at once, from its initial carry each time: its scan is `chunk`
    steps long instead of T. The summary of a chunk is the lower layer's final hidden state there
    (`jaxrnn.models.pooling.final_hidden`: for a `Bidirectional` lower layer, both directions'
    final states merged); the upper layer runs over the ``ceil(T / chunk)`` summaries. A sequence whose
    length is not a multiple of `chunk` ends in a shorter chunk (the time axis is padded and masked).

    Args:
      lower: a batch-major layer (`RNN`, `Bidirectional`, `Stacked`) run within chunks.
      upper: a batch-major layer run across chunks; its input size is the lower's summary size.
      chunk: steps per chunk, k.
      broadcast: what `apply` returns as outputs.
        ``None`` (default): the upper layer's outputs, one per chunk, ``[*batch, ceil(T/k), H_up]``.
        ``"previous"``: per step, the lower output concatenated with the upper state after the
        *previous* chunks (the upper initial state in the first chunk), ``[*batch, T, H_low + H_up]``;
        causal when both layers are.
        ``"current"``: the same with the upper state after the step's *own* chunk (sees the chunk's
        future steps; for tagging).

    Params: ``{"lower": ..., "upper": ...}``. Carry: the upper layer's (the lower one restarts in
    every chunk). With ``lengths`` the carry is the upper state after each sequence's last chunk.

    Example::

        layer = jaxrnn.Hierarchical(jaxrnn.RNN(jaxrnn.GRU(32)), jaxrnn.RNN(jaxrnn.GRU(64)), chunk=16)
        params = layer.init(jax.random.key(0), input_size=4)
        ys, h = layer.apply(params, xs, lengths=lengths)     # xs: [B, 1024, 4] -> ys: [B, 64, 64]
        logits = h @ w_out                                   # a sequence classifier on the upper state

    References:
      El Hihi & Bengio, "Hierarchical recurrent neural networks for long-term dependencies", NIPS 1995.
      Sordoni et al., "A hierarchical recurrent encoder-decoder for generative context-aware query
      suggestion", CIKM 2015.
    """

    lower: Any
    upper: Any
    _: dataclasses.KW_ONLY
    chunk: int
    broadcast: str | None = None

    def __post_init__(self) -> None:
        for name in ("lower", "upper"):
            layer = getattr(self, name)
            if not all(hasattr(layer, m) for m in ("init", "apply", "initial_carry", "output_size")):
                raise TypeError(f"Hierarchical: argument '{name}' must be a jaxrnn layer, got {type(layer).__name__}")
            if getattr(layer, "time_major", False):
                raise ValueError(f"Hierarchical: argument '{name}' must be batch-major (time_major=False)")
        _checks.check_positive_int("Hierarchical", "chunk", self.chunk)
        _checks.check_choice("Hierarchical", "broadcast", self.broadcast, BROADCASTS)

    @property
    def time_major(self) -> bool:
        return False

    @property
    def output_size(self) -> int:
        if self.broadcast is None:
            return self.upper.output_size
        return self.lower.output_size + self.upper.output_size

    def summary_size(self, lower_params: Params) -> int:
        """Feature size of the chunk summaries (the upper layer's input size)."""
        shape = jax.eval_shape(lambda p: _summary(self.lower, self.lower.initial_carry(p, ())), lower_params)
        return int(shape.shape[-1])

    def init(self, key: PRNGKey, input_size: int) -> Params:
        k_low, k_up = jax.random.split(key)
        lower = self.lower.init(k_low, input_size)
        return {"lower": lower, "upper": self.upper.init(k_up, self.summary_size(lower))}

    def initial_carry(self, params: Params, batch_shape: tuple[int, ...] = ()) -> Carry:
        return self.upper.initial_carry(params["upper"], batch_shape)

    def final_hidden(self, carry: Carry) -> Array:
        """The upper layer's final hidden state: the summary of the whole sequence (used by
        `jaxrnn.models` heads with ``pool="last"`` and by an enclosing `Hierarchical`)."""
        return _summary(self.upper, carry)

    def apply(
        self,
        params: Params,
        xs: Array,
        *,
        lengths: Array | None = None,
        carry: Carry | None = None,
        key: PRNGKey | None = None,
        probe: tuple[Array, Array] | None = None,
    ) -> tuple[Array, Carry]:
        """Runs both levels.

        Args:
          params: from `init`.
          xs: ``[*batch, T, F]``.
          lengths: optional ``[*batch]`` lengths of right-padded sequences.
          carry: optional initial carry of the upper layer.
          key: optional key, split between the two layers (dropout).
          probe: optional ``(lower_probe, upper_probe)``, shaped like the lower outputs
            ``[*batch, chunks, k, H_low]`` and the upper outputs ``[*batch, chunks, H_up]``.

        Returns:
          ``(ys, upper_final_carry)``; ``ys`` as described by `broadcast`.
        """
        fn = "Hierarchical.apply"
        _check_param_keys(fn, params, ("lower", "upper"))
        xs = _checks.check_float_array(fn, "xs", xs, min_ndim=2, layout="[*batch, T, F]")
        num_steps, batch_shape = xs.shape[-2], tuple(xs.shape[:-2])
        k = self.chunk
        num_chunks = -(-num_steps // k)
        pad = num_chunks * k - num_steps
        if lengths is not None:
            lengths = _checks.check_lengths(fn, lengths, batch_shape, num_steps)
        elif pad:
            lengths = jnp.full(batch_shape, num_steps, jnp.int32)
        probe_low, probe_up = _split_carry(fn, probe, 2, arg="probe")
        key_low, key_up = (None, None) if key is None else tuple(jax.random.split(key))

        xs = jnp.pad(xs, [(0, 0)] * len(batch_shape) + [(0, pad), (0, 0)])
        chunks = xs.reshape(*batch_shape, num_chunks, k, xs.shape[-1])
        chunk_lengths = upper_lengths = None
        if lengths is not None:
            chunk_lengths = jnp.clip(lengths[..., None] - k * jnp.arange(num_chunks), 0, k)
            upper_lengths = -(-lengths // k)
        ys_low, carry_low = self.lower.apply(
            params["lower"], chunks, lengths=chunk_lengths, key=key_low, probe=probe_low
        )
        summaries = _summary(self.lower, carry_low)  # [*batch, chunks, H_low]
        if carry is None:
            carry = self.upper.initial_carry(params["upper"], batch_shape)
        ys_up, carry_up = self.upper.apply(
            params["upper"], summaries, lengths=upper_lengths, carry=carry, key=key_up, probe=probe_up
        )
        if self.broadcast is None:
            return ys_up, carry_up

        context = ys_up
        if self.broadcast == "previous":
            first = _summary(self.upper, carry)[..., None, :]
            context = jnp.concatenate([first.astype(ys_up.dtype), ys_up[..., :-1, :]], axis=-2)
        context = jnp.broadcast_to(context[..., None, :], (*context.shape[:-1], k, context.shape[-1]))
        ys = jnp.concatenate([ys_low, context.astype(ys_low.dtype)], axis=-1)
        ys = ys.reshape(*batch_shape, num_chunks * k, ys.shape[-1])[..., :num_steps, :]
        if lengths is not None:
            valid = jnp.arange(num_steps) < lengths[..., None]
            ys = jnp.where(valid[..., None], ys, 0)
        return ys, carry_up
