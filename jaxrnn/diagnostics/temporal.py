"""Per-time-step gradient norms ||dL/dh_t||: the vanishing / exploding-gradient profile of a recurrent net.

`RNN.apply` (and `Bidirectional`, `Stacked`) accept ``probe=``: an additive perturbation of the hidden
state at every step. With a zero probe the forward pass is unchanged and ``dL/dprobe_t`` is the *total*
derivative ``dL/dh_t`` (through the output at t and, via the recurrence, every later step), so one
backward pass gives the whole profile, for every layer and direction, plus ``dL/dx_t``.

References:
  Hochreiter, "Untersuchungen zu dynamischen neuronalen Netzen", diploma thesis, TU Munich, 1991.
  Bengio, Simard & Frasconi, "Learning long-term dependencies with gradient descent is difficult",
  IEEE TNN 5(2), 1994.
  Pascanu, Mikolov & Bengio, "On the difficulty of training recurrent neural networks", ICML 2013.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn._typing import Array, Params, PRNGKey
from jaxrnn.diagnostics.norms import scaled_sum_of_squares
from jaxrnn.layers import RNN, Bidirectional, Stacked

LossFn = Callable[[Array], Array]

# A backward seed for profiles that must reach far below float32's range: with it, gradient norms down
# to ~1e-57 are recorded (XLA flushes float32 subnormals, below ~1e-38, to zero on CPU), while norms up
# to ~1e19 still fit. A power of two, so multiplying by it and dividing it out is exact.
DEEP_SCALE = 2.0**64


class TemporalGradNorms(NamedTuple):
    """The result of `temporal_grad_profile`.

    Attributes:
      hidden: ``||dL/dh_t||`` for every step, ``[T]`` (``[*batch, T]`` with ``per_example=True``), in a
        pytree shaped like the layer's probe: one array for an `RNN`, a ``(forward, backward)`` pair for
        a `Bidirectional`, a tuple with one entry per layer for a `Stacked`.
      inputs: ``||dL/dx_t||``, ``[T]`` (or ``[*batch, T]``); None for integer inputs (token ids).
      log10_hidden: ``log10`` of `hidden`, computed in log space: exact even where a norm is below
        float32's range (with ``scale``) and `hidden` reads 0.
      log10_inputs: ``log10`` of `inputs`, likewise.
      loss: the loss value.
    """

    hidden: Any
    inputs: Array | None
    log10_hidden: Any
    log10_inputs: Array | None
    loss: Array


def zero_probe(layer: Any, params: Params, xs: Array, *, lengths: Array | None = None) -> Any:
    """Zeros shaped like the hidden states `layer.apply` exposes to ``probe=`` (see `RNN.apply`).

    An `RNN` gets one array shaped like its outputs, a `Bidirectional` a ``(forward, backward)`` pair,
    a `Stacked` a tuple with one entry per layer. For a model that wraps a layer in a field named
    ``layer`` (every `jaxrnn.models` model) it is the probe of that layer, shaped by the inputs the
    model actually feeds it (e.g. embeddings, for a language model).
    """
    layer_xs = []
    traced = _with_probe(layer, None, layer_xs)
    out = jax.eval_shape(lambda p, x: traced.apply(p, x, lengths=lengths)[0], params, xs)
    if layer_xs:  # a model: shape the probe by what reached its layer
        in_shape, dtype = layer_xs[0]
        return _probe_zeros(layer.layer, in_shape, dtype)
    return _probe_zeros(layer, tuple(xs.shape), out.dtype)


@dataclasses.dataclass(frozen=True, eq=False)
class _ProbedLayer:
    """Stands in for a model's layer: runs it with a probe (and records the shapes it is fed)."""

    layer: Any
    probe: Any
    seen: list

    def __getattr__(self, name: str) -> Any:
        if name == "layer":  # not yet set (copying): avoid recursing
            raise AttributeError(name)
        return getattr(self.layer, name)

    def apply(self, params: Params, xs: Array, **kwargs: Any) -> Any:
        kwargs.pop("probe", None)
        out = self.layer.apply(params, xs, probe=self.probe, **kwargs)
        self.seen.append((tuple(xs.shape), out[0].dtype))
        return out


def _is_layer(layer: Any) -> bool:
    return isinstance(layer, (RNN, Bidirectional, Stacked))


def _with_probe(model: Any, probe: Any, seen: list) -> Any:
    """`model` whose layer runs with `probe`: the layer itself gets ``probe=``; a model gets its
    ``layer`` field swapped for a `_ProbedLayer` (models are frozen dataclasses; nothing to cooperate)."""
    if _is_layer(model):
        return _Applied(model, probe)
    if dataclasses.is_dataclass(model) and _is_layer(getattr(model, "layer", None)):
        return dataclasses.replace(model, layer=_ProbedLayer(model.layer, probe, seen))
    raise TypeError(
        "temporal_grad_norms: argument 'layer' must be a jaxrnn RNN, Bidirectional or Stacked layer, or a model "
        f"holding one in its 'layer' field (e.g. jaxrnn.models.SequenceRegressor), got {type(model).__name__}"
    )


@dataclasses.dataclass(frozen=True, eq=False)
class _Applied:
    layer: Any
    probe: Any

    def apply(self, params: Params, xs: Array, **kwargs: Any) -> Any:
        return self.layer.apply(params, xs, probe=self.probe, **kwargs)


def _probe_zeros(layer: Any, in_shape: tuple[int, ...], dtype: Any) -> Any:
    if isinstance(layer, RNN):
        return jnp.zeros((*in_shape[:-1], layer.output_size), dtype)
    if isinstance(layer, Bidirectional):
        return (_probe_zeros(layer.forward, in_shape, dtype), _probe_zeros(layer.backward, in_shape, dtype))
    if isinstance(layer, Stacked):
        probes, shape = [], in_shape
        for sub in layer.layers:
            probes.append(_probe_zeros(sub, shape, dtype))
            shape = (*shape[:-1], sub.output_size)
        return tuple(probes)
    raise TypeError(
        "temporal_grad_norms: argument 'layer' may only hold RNN, Bidirectional and Stacked layers (their "
        f"hidden states take a probe), got a {type(layer).__name__} inside"
    )


def _time_major(model: Any) -> bool:
    layer = model if _is_layer(model) else model.layer
    return bool(layer.time_major)


def _step_norms(g: Array, time_major: bool, per_example: bool, scale: float) -> tuple[Array, Array]:
    """``(||g_t||, log10 ||g_t||)`` per step for g ``[*batch, T, F]`` (``[T, *batch, F]`` if time-major),
    with the backward seed `scale` divided out."""
    g = jnp.moveaxis(g, 0, -2) if time_major else g  # -> [*batch, T, F]
    axes = (-1,) if per_example else tuple(range(g.ndim - 2)) + (-1,)
    m, s = scaled_sum_of_squares(g, axis=axes)
    # m / scale first: exact for a power of two, and the product cannot overflow on the way.
    return (m / scale) * jnp.sqrt(s), jnp.log10(m) + 0.5 * jnp.log10(s) - np.log10(scale)


def temporal_grad_profile(
    layer: Any,
    params: Params,
    xs: Array,
    loss_fn: LossFn,
    *,
    lengths: Array | None = None,
    key: PRNGKey | None = None,
    per_example: bool = False,
    scale: float = 1.0,
) -> TemporalGradNorms:
    """``||dL/dh_t||`` for every step (every layer and direction) and ``||dL/dx_t||``, from one backward pass.

    Args:
      layer: an `RNN`, `Bidirectional` or `Stacked` layer, or a model holding one in its ``layer`` field
        (any `jaxrnn.models` model: the probe goes to that layer, the loss sees the model's outputs).
      params: the layer's (or model's) parameters.
      xs: inputs in the layer's layout, ``[*batch, T, F]`` (or time-major).
      loss_fn: maps the outputs of ``layer.apply`` (the first element of its result) to a scalar.
      lengths: optional ``[*batch]`` lengths of right-padded sequences (norms past a length are 0).
      key: passed to ``layer.apply`` (e.g. to switch on a `Stacked` layer's dropout).
      per_example: keep the batch dims: norms ``[*batch, T]`` instead of the norm over the batch ``[T]``.
      scale: seed of the backward pass (``dL/dL = scale``). The backward pass is linear in its seed, so
        every cotangent is multiplied by ``scale`` (exactly, for a power of two) and divided back out
        in the result: ``scale=DEEP_SCALE`` (2**64) lifts gradients that would underflow float32
        (below ~1e-38; XLA flushes subnormals on CPU) into range, as loss scaling does for mixed
        precision. Too large a scale overflows where gradients are large; the ``log10_*`` fields
        report what float32 cannot hold.

    Returns:
      A `TemporalGradNorms`. Norms are over the whole batch (and features) at each step:
      ``||dL/dh_t|| = sqrt(sum_b ||dL/dh_{b,t}||^2)``, computed by scaling by the largest entry first,
      so float32 norms down to ~1e-38 come out exact where ``sqrt(sum(g**2))`` would give 0.

    Example::

        layer = jaxrnn.RNN(jaxrnn.GRU(32))
        params = layer.init(jax.random.key(0), input_size=2)
        xs = jax.random.normal(jax.random.key(1), (16, 100, 2))
        prof = temporal_grad_profile(layer, params, xs, lambda ys: jnp.mean(ys[:, -1] ** 2))
        prof.hidden          # [100]: ||dL/dh_t||, tiny at t=0 for a GRU at default init
        vanishing_ratio(prof)   # log10(||dL/dh_0|| / ||dL/dh_99||), about -13 here
    """
    fn = "temporal_grad_profile"
    if not hasattr(xs, "shape") or not hasattr(xs, "dtype"):
        raise TypeError(f"{fn}: argument 'xs' must be an array, got {type(xs).__name__}")
    xs = jnp.asarray(xs)
    float_inputs = jnp.issubdtype(xs.dtype, jnp.floating)
    if not callable(loss_fn):
        raise TypeError(f"{fn}: argument 'loss_fn' must be callable (outputs -> scalar), got {type(loss_fn).__name__}")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not (0 < scale < np.inf):
        raise ValueError(f"{fn}: argument 'scale' must be a positive finite float, got {scale!r}")
    if not isinstance(per_example, bool):
        raise TypeError(f"{fn}: argument 'per_example' must be a bool, got {per_example!r}")
    probe = zero_probe(layer, params, xs, lengths=lengths)

    def loss_of(probe: Any, xs: Array) -> Array:
        outputs = _with_probe(layer, probe, []).apply(params, xs, lengths=lengths, key=key)[0]
        loss = jnp.asarray(loss_fn(outputs))
        if loss.shape != ():
            raise ValueError(f"{fn}: argument 'loss_fn' must return a scalar, got shape {loss.shape}")
        return loss

    loss_type = jax.eval_shape(loss_of, probe, xs)  # checks the loss is a scalar before any compiling
    if not np.isfinite(np.asarray(scale, loss_type.dtype)):
        raise ValueError(f"{fn}: argument 'scale' must be finite in the loss dtype {loss_type.dtype}, got {scale!r}")
    if float_inputs:
        loss, vjp = jax.vjp(loss_of, probe, xs)
        g_probe, g_xs = vjp(jnp.asarray(scale, loss.dtype))
    else:  # token ids: no derivative with respect to the inputs
        loss, vjp = jax.vjp(lambda p: loss_of(p, xs), probe)
        (g_probe,), g_xs = vjp(jnp.asarray(scale, loss.dtype)), None
    time_major = _time_major(layer)
    leaves, treedef = jax.tree.flatten(g_probe)
    per_leaf = [_step_norms(g, time_major, per_example, scale) for g in leaves]
    inputs, log10_inputs = (None, None) if g_xs is None else _step_norms(g_xs, time_major, per_example, scale)
    return TemporalGradNorms(
        hidden=treedef.unflatten([norm for norm, _ in per_leaf]),
        inputs=inputs,
        log10_hidden=treedef.unflatten([log10 for _, log10 in per_leaf]),
        log10_inputs=log10_inputs,
        loss=loss,
    )


def temporal_grad_norms(
    layer: Any,
    params: Params,
    xs: Array,
    loss_fn: LossFn,
    *,
    lengths: Array | None = None,
    key: PRNGKey | None = None,
    per_example: bool = False,
    scale: float = 1.0,
) -> Any:
    """``||dL/dh_t||`` for every step t: ``[T]`` for an `RNN` (see `temporal_grad_profile` for the rest).

    For a `Stacked` layer the result is a tuple with one ``[T]`` array per layer, for a `Bidirectional`
    a ``(forward, backward)`` pair; for an LSTM ``h_t`` is the hidden part of the carry ``(h, c)``.

    Example::

        norms = temporal_grad_norms(layer, params, xs, lambda ys: jnp.mean((ys[:, -1] @ w - targets) ** 2))
    """
    return temporal_grad_profile(
        layer, params, xs, loss_fn, lengths=lengths, key=key, per_example=per_example, scale=scale
    ).hidden


def _log10_of(norms: Any) -> Any:
    if isinstance(norms, TemporalGradNorms):
        return norms.log10_hidden
    return jax.tree.map(lambda n: jnp.log10(jnp.asarray(n)), norms)


def _last_valid(logs: Array, lengths: Array | None) -> Array:
    if lengths is None:
        return logs[..., -1]
    lengths = jnp.asarray(lengths)
    if lengths.shape != logs.shape[:-1]:
        raise ValueError(
            "vanishing_ratio: argument 'lengths' must have the batch shape of per-example norms "
            f"{tuple(logs.shape[:-1])} (use per_example=True), got shape {tuple(lengths.shape)}"
        )
    idx = jnp.clip(lengths - 1, 0, logs.shape[-1] - 1)[..., None]
    last = jnp.take_along_axis(logs, idx, axis=-1)[..., 0]
    return jnp.where(lengths > 0, last, jnp.nan)


def vanishing_ratio(norms: Any, *, lengths: Array | None = None) -> Any:
    """``log10(||dL/dh_0|| / ||dL/dh_{T-1}||)``: orders of magnitude lost from the last step to the first.

    ``-13`` means the gradient reaching the first step is 1e-13 of the one at the last: vanishing.
    Positive values mean exploding gradients. For a layer run in reverse (the backward half of a
    `Bidirectional`) time runs the other way and the sign flips.

    Args:
      norms: norms ``[..., T]`` (a pytree of them, e.g. per layer), or a `TemporalGradNorms`, whose
        log-space norms are used (exact even where the norms underflow float32).
      lengths: with per-example norms ``[*batch, T]``, each sequence's length: its last step is
        ``lengths - 1`` (``nan`` for length 0).
    """
    return jax.tree.map(lambda lg: lg[..., 0] - _last_valid(lg, lengths), _log10_of(norms))


def decay_rate(norms: Any) -> Any:
    """Decades of gradient norm lost per step going back in time: the least-squares slope of
    ``log10 ||dL/dh_t||`` against t (positive: vanishing; negative: exploding).

    A slope fit over all finite steps, so a one-off drop (e.g. an LSTM's output gate at the last step)
    does not dominate as it does in `vanishing_ratio`. Accepts what `vanishing_ratio` accepts.
    """

    def slope(lg: Array) -> Array:
        t = jnp.arange(lg.shape[-1], dtype=lg.dtype)
        ok = jnp.isfinite(lg)
        w = ok.astype(lg.dtype)
        n = jnp.sum(w, axis=-1, keepdims=True)
        t_mean = jnp.sum(w * t, axis=-1, keepdims=True) / n
        y = jnp.where(ok, lg, 0.0)
        y_mean = jnp.sum(y, axis=-1, keepdims=True) / n
        cov = jnp.sum(w * (t - t_mean) * (y - y_mean), axis=-1)
        var = jnp.sum(w * jnp.square(t - t_mean), axis=-1)
        return cov / var

    return jax.tree.map(slope, _log10_of(norms))
