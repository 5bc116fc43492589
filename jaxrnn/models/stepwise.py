"""`StepwiseHead`: a layer with a dense read-out at every time step: the many-to-many model shape."""

from __future__ import annotations

import dataclasses

from jaxrnn._typing import Array, Carry, Params, PRNGKey
from jaxrnn.models.base import LayerHead, check_model_params


@dataclasses.dataclass(frozen=True)
class StepwiseHead(LayerHead):
    """Many-to-many: ``layer`` over the sequence, then ``Dense(head_size)`` on each step's output.

    The base of `Tagger` and `AutoregressiveForecaster`. Outputs keep the layer's layout
    (``[*batch, T, head_size]``, or time-major). The layer's outputs past a sequence's length are
    zero, so the read-out there is its bias: losses must mask padded steps (`jaxrnn.models.losses`).

    Params: ``{"layer": layer params, "head": {"w", "b"}}``.
    """

    def apply(
        self,
        params: Params,
        xs: Array,
        *,
        lengths: Array | None = None,
        carry: Carry | None = None,
        key: PRNGKey | None = None,
    ) -> tuple[Array, Carry]:
        """Per-step outputs ``[*batch, T, head_size]`` and the layer's final carry.

        Same arguments as the layer's `apply` (``xs [*batch, T, F]``, optional ``lengths``,
        ``carry`` and dropout ``key``).
        """
        check_model_params(f"{type(self).__name__}.apply", params, ("layer", "head"))
        ys, final = self.layer.apply(params["layer"], xs, lengths=lengths, carry=carry, key=key)
        return self.head.apply(params["head"], ys), final
