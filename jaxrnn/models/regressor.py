"""Many-to-one regression: `SequenceRegressor` (a vector per sequence) and `DirectForecaster`.

`DirectForecaster` is the *direct* multi-step strategy: one read-out predicts all `horizon` future
values at once from the state after the context, so errors do not compound as in a recursive
rollout (compare `AutoregressiveForecaster`; Taieb et al. 2012 review both).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from jaxrnn import _checks
from jaxrnn._typing import Array, Params, PRNGKey
from jaxrnn.models.pooled import PooledHead


def _mse(fn: str, preds: Array, targets: Array) -> Array:
    if not hasattr(targets, "shape") or tuple(targets.shape) != tuple(preds.shape):
        got = tuple(targets.shape) if hasattr(targets, "shape") else type(targets).__name__
        raise ValueError(f"{fn}: argument 'targets' must have the predictions' shape {tuple(preds.shape)}, got {got}")
    return jnp.mean(jnp.square(preds - targets))


@dataclasses.dataclass(frozen=True)
class SequenceRegressor(PooledHead):
    """Real-valued outputs ``[*batch, output_size]`` per sequence: layer, pooling, dense read-out.

    Args:
      layer: any jaxrnn layer.
      output_size: number of regression targets.
      pool: ``"last"``, ``"mean"`` or ``"max"`` (see `SequenceClassifier`).

    Example::

        model = jaxrnn.models.SequenceRegressor(jaxrnn.RNN(jaxrnn.LSTM(32)), output_size=1)
        params = model.init(jax.random.key(0), input_size=3)
        y, _ = model.apply(params, xs)                      # [batch, 1]
        loss = model.loss(params, xs, targets)              # mean squared error
    """

    output_size: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        _checks.check_positive_int(type(self).__name__, "output_size", self.output_size)

    @property
    def head_size(self) -> int:
        return self.output_size

    def loss(
        self,
        params: Params,
        xs: Array,
        targets: Array,
        *,
        lengths: Array | None = None,
        key: PRNGKey | None = None,
    ) -> Array:
        """Mean squared error of the predictions against `targets` (the predictions' shape)."""
        preds, _ = self.apply(params, xs, lengths=lengths, key=key)
        return _mse(f"{type(self).__name__}.loss", preds, targets)


@dataclasses.dataclass(frozen=True)
class DirectForecaster(SequenceRegressor):
    """Forecasts the next `horizon` values ``[*batch, horizon, output_size]`` in one read-out.

    Args:
      layer: any jaxrnn layer reading the context window ``[*batch, T, F]``.
      horizon: number of future steps predicted.
      output_size: features per future step (often F, the series' own dimension).
      pool: how the context is summarised (``"last"`` by default).

    Example::

        model = jaxrnn.models.DirectForecaster(jaxrnn.RNN(jaxrnn.LSTM(32)), horizon=12, output_size=1)
        params = model.init(jax.random.key(0), input_size=1)
        future, _ = model.apply(params, window)             # window [batch, T, 1] -> [batch, 12, 1]

    References:
      Taieb, Bontempi, Atiya & Sorjamaa, "A review and comparison of strategies for multi-step ahead
      time series forecasting", Expert Systems with Applications 39(8), 2012.
    """

    horizon: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        _checks.check_positive_int("DirectForecaster", "horizon", self.horizon)

    @property
    def head_size(self) -> int:
        return self.horizon * self.output_size

    def _finish(self, out: Array) -> Array:
        return out.reshape(*out.shape[:-1], self.horizon, self.output_size)
