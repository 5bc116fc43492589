"""`SequenceClassifier`: one label per sequence (e.g. sentiment), from a pooled recurrent state."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import optax

from jaxrnn import _checks
from jaxrnn._typing import Array, Params, PRNGKey
from jaxrnn.models.losses import check_labels
from jaxrnn.models.pooled import PooledHead


@dataclasses.dataclass(frozen=True)
class SequenceClassifier(PooledHead):
    """Logits ``[*batch, num_classes]`` for each sequence: layer, pooling over time, dense read-out.

    Args:
      layer: any jaxrnn layer (`RNN`, `Bidirectional`, `Stacked`, ...).
      num_classes: number of classes C.
      pool: ``"last"`` (final hidden state; for a bidirectional layer the forward state after the
        last valid step merged with the backward state after step 0), ``"mean"`` or ``"max"``
        (over each sequence's valid steps, as in Collobert et al. 2011's max-over-time pooling).

    Params: ``{"layer": ..., "head": {"w": [H, C], "b": [C]}}``.

    Example::

        model = jaxrnn.models.SequenceClassifier(jaxrnn.RNN(jaxrnn.GRU(64)), num_classes=10)
        params = model.init(jax.random.key(0), input_size=8)
        logits, _ = model.apply(params, xs, lengths=lengths)        # [batch, 10]
        loss = model.loss(params, xs, labels, lengths=lengths)       # mean cross-entropy

    References:
      Collobert et al., "Natural language processing (almost) from scratch", JMLR 12, 2011.
    """

    num_classes: int = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        _checks.check_positive_int("SequenceClassifier", "num_classes", self.num_classes)

    @property
    def head_size(self) -> int:
        return self.num_classes

    def loss(
        self,
        params: Params,
        xs: Array,
        labels: Array,
        *,
        lengths: Array | None = None,
        key: PRNGKey | None = None,
    ) -> Array:
        """Mean softmax cross-entropy (nats) against integer `labels` ``[*batch]``."""
        logits, _ = self.apply(params, xs, lengths=lengths, key=key)
        labels = check_labels("SequenceClassifier.loss", "labels", labels, logits)
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))

    def predict(self, params: Params, xs: Array, *, lengths: Array | None = None) -> Array:
        """The most likely class ``[*batch]`` of each sequence."""
        logits, _ = self.apply(params, xs, lengths=lengths)
        return jnp.argmax(logits, axis=-1)
