"""`Tagger`: one label per time step (part-of-speech, named entities, ...), many-to-many."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from jaxrnn import _checks
from jaxrnn._typing import Array, Params, PRNGKey
from jaxrnn.models.base import is_time_major
from jaxrnn.models.losses import sequence_accuracy, sequence_cross_entropy, step_mask
from jaxrnn.models.stepwise import StepwiseHead


@dataclasses.dataclass(frozen=True)
class Tagger(StepwiseHead):
    """Per-step tag logits ``[*batch, T, num_tags]``; losses and metrics ignore padded steps.

    A `Bidirectional` layer lets each tag see both its past and its future, which sequence
    labelling usually needs (Graves & Schmidhuber 2005; Huang, Xu & Yu 2015).

    Args:
      layer: any jaxrnn layer.
      num_tags: number of tag classes.

    Example::

        model = jaxrnn.models.Tagger(jaxrnn.Bidirectional(jaxrnn.RNN(jaxrnn.LSTM(64))), num_tags=17)
        params = model.init(jax.random.key(0), input_size=32)
        loss = model.loss(params, xs, tags, lengths=lengths)      # mean over valid steps
        acc = model.accuracy(params, xs, tags, lengths=lengths)

    References:
      Graves & Schmidhuber, "Framewise phoneme classification with bidirectional LSTM and other
      neural network architectures", Neural Networks 18(5-6), 2005.
      Huang, Xu & Yu, "Bidirectional LSTM-CRF models for sequence tagging", arXiv:1508.01991, 2015.
    """

    num_tags: int = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        _checks.check_positive_int("Tagger", "num_tags", self.num_tags)

    @property
    def head_size(self) -> int:
        return self.num_tags

    def loss(
        self, params: Params, xs: Array, tags: Array, *, lengths: Array | None = None, key: PRNGKey | None = None
    ) -> Array:
        """Mean cross-entropy (nats) over valid steps against integer `tags` ``[*batch, T]``."""
        logits, _ = self.apply(params, xs, lengths=lengths, key=key)
        return sequence_cross_entropy(logits, tags, lengths, time_major=is_time_major(self.layer))

    def accuracy(self, params: Params, xs: Array, tags: Array, *, lengths: Array | None = None) -> Array:
        """Fraction of valid steps whose most likely tag is right."""
        logits, _ = self.apply(params, xs, lengths=lengths)
        return sequence_accuracy(logits, tags, lengths, time_major=is_time_major(self.layer))

    def predict(self, params: Params, xs: Array, *, lengths: Array | None = None) -> Array:
        """Most likely tag per step ``[*batch, T]``; -1 at padded steps."""
        logits, _ = self.apply(params, xs, lengths=lengths)
        tags = jnp.argmax(logits, axis=-1)
        mask = step_mask(lengths, tags.shape[0 if is_time_major(self.layer) else -1], time_major=is_time_major(self.layer))
        return tags if mask is None else jnp.where(mask, tags, -1)
