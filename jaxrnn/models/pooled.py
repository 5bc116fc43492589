"""`PooledHead`: a layer, a pooling over time, and a dense read-out: the many-to-one model shape."""

from __future__ import annotations

import dataclasses

from jaxrnn import _checks
from jaxrnn._typing import Array, Carry, Params, PRNGKey
from jaxrnn.models.base import LayerHead, check_model_params, is_time_major
from jaxrnn.models.pooling import POOLS, pool


@dataclasses.dataclass(frozen=True)
class PooledHead(LayerHead):
    """Many-to-one: ``layer`` over the sequence, pooled to one vector, then ``Dense(head_size)``.

    The base of `SequenceClassifier`, `SequenceRegressor` and `DirectForecaster`; subclasses set
    `head_size` and may reshape the read-out in `_finish`.

    Params: ``{"layer": layer params, "head": {"w", "b"}}``.
    """

    _: dataclasses.KW_ONLY
    pool: str = "last"

    def __post_init__(self) -> None:
        super().__post_init__()
        _checks.check_choice(type(self).__name__, "pool", self.pool, POOLS)

    def features(
        self,
        params: Params,
        xs: Array,
        *,
        lengths: Array | None = None,
        carry: Carry | None = None,
        key: PRNGKey | None = None,
    ) -> tuple[Array, Carry]:
        """The pooled recurrent features ``[*batch, layer.output_size]`` and the layer's final carry."""
        check_model_params(f"{type(self).__name__}.apply", params, ("layer", "head"))
        ys, final = self.layer.apply(params["layer"], xs, lengths=lengths, carry=carry, key=key)
        pooled = pool(ys, lengths, self.pool, layer=self.layer, carry=final, time_major=is_time_major(self.layer))
        return pooled, final

    def apply(
        self,
        params: Params,
        xs: Array,
        *,
        lengths: Array | None = None,
        carry: Carry | None = None,
        key: PRNGKey | None = None,
    ) -> tuple[Array, Carry]:
        """Runs the model: ``(predictions, final_carry)``; same inputs as the layer's `apply`.

        Args:
          params: from `init`.
          xs: ``[*batch, T, F]`` (``[T, *batch, F]`` for a time-major layer).
          lengths: optional ``[*batch]`` lengths of right-padded sequences.
          carry: optional initial carry of the layer.
          key: optional PRNG key, handed to the layer (switches on its dropout, if any).
        """
        pooled, final = self.features(params, xs, lengths=lengths, carry=carry, key=key)
        return self._finish(self.head.apply(params["head"], pooled)), final

    def _finish(self, out: Array) -> Array:
        return out
