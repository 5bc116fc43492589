"""`AutoregressiveForecaster`: one-step-ahead prediction, rolled out recursively for multi-step forecasts."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxrnn import _checks
from jaxrnn._typing import Array, Params, PRNGKey
from jaxrnn.models.base import is_time_major
from jaxrnn.models.losses import masked_mean, step_mask
from jaxrnn.models.pooling import last_valid
from jaxrnn.models.stepwise import StepwiseHead
from jaxrnn.models.streaming import check_causal, layer_step


@dataclasses.dataclass(frozen=True)
class AutoregressiveForecaster(StepwiseHead):
    """Predicts ``x_{t+1}`` from ``x_{<=t}`` at every step; `forecast` feeds predictions back in.

    Training is teacher-forced (`loss` compares the prediction at t with the true ``x_{t+1}``);
    `forecast` runs the layer over the context, then advances it one step at a time with its
    cells' `step` (`jaxrnn.models.streaming.layer_step`) inside a `lax.scan`, each prediction being
    the next input: the *recursive* multi-step strategy (compare `DirectForecaster`).

    Args:
      layer: a causal jaxrnn layer (a forward `RNN` or a `Stacked` of them) with input size `num_features`.
      num_features: the series' dimension F (inputs and predictions).

    Example::

        model = jaxrnn.models.AutoregressiveForecaster(jaxrnn.RNN(jaxrnn.GRU(32)), num_features=1)
        params = model.init(jax.random.key(0), input_size=1)
        loss = model.loss(params, series)                    # one-step-ahead MSE, series [batch, T, 1]
        future = model.forecast(params, series, horizon=24)  # [batch, 24, 1]

    References:
      Taieb, Bontempi, Atiya & Sorjamaa, "A review and comparison of strategies for multi-step ahead
      time series forecasting", Expert Systems with Applications 39(8), 2012.
    """

    num_features: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        _checks.check_positive_int("AutoregressiveForecaster", "num_features", self.num_features)
        check_causal("AutoregressiveForecaster", self.layer)

    @property
    def head_size(self) -> int:
        return self.num_features

    def init(self, key: PRNGKey, input_size: int | None = None) -> Params:
        """Parameters; `input_size`, if given, must equal `num_features` (predictions are fed back)."""
        if input_size is not None and input_size != self.num_features:
            raise ValueError(
                f"AutoregressiveForecaster.init: argument 'input_size' must equal num_features "
                f"{self.num_features} (predictions are the next inputs), got {input_size!r}"
            )
        return super().init(key, self.num_features)

    def _batch_major(self, ys: Array) -> Array:
        return jnp.moveaxis(ys, 0, -2) if is_time_major(self.layer) else ys

    def loss(self, params: Params, xs: Array, *, lengths: Array | None = None, key: PRNGKey | None = None) -> Array:
        """Teacher-forced one-step-ahead mean squared error over the valid pairs ``(t, t + 1)``."""
        preds, _ = self.apply(params, xs, lengths=lengths, key=key)
        preds, xs = self._batch_major(preds), self._batch_major(jnp.asarray(xs))
        err = jnp.square(preds[..., :-1, :] - xs[..., 1:, :])
        mask = step_mask(None if lengths is None else jnp.asarray(lengths) - 1, err.shape[-2])
        return masked_mean(err, None if mask is None else mask[..., None])

    def forecast(self, params: Params, xs: Array, horizon: int, *, lengths: Array | None = None) -> Array:
        """The next `horizon` values ``[*batch, horizon, F]`` after each context sequence in `xs`.

        With `lengths` each forecast starts after its own sequence's last valid step (lengths >= 1).
        """
        _checks.check_positive_int("AutoregressiveForecaster.forecast", "horizon", horizon)
        preds, carry = self.apply(params, xs, lengths=lengths)
        first = last_valid(self._batch_major(preds), lengths)

        def body(state: tuple, _: None) -> tuple[tuple, Array]:
            c, x = state
            c, y = layer_step(self.layer, params["layer"], c, x)
            nxt = self.head.apply(params["head"], y)
            return (c, nxt), nxt

        _, rest = jax.lax.scan(body, (carry, first), None, length=horizon - 1)
        return jnp.concatenate([first[..., None, :], jnp.moveaxis(rest, 0, -2)], axis=-2)
