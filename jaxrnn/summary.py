"""`summary(model, params, input_shape)`: a Keras-style table of layers, output shapes and parameter counts.

Shapes come from `jax.eval_shape`, so building the table runs no FLOPs and allocates no arrays.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn._typing import Params
from jaxrnn.layers import RNN, Bidirectional, Stacked


@dataclasses.dataclass
class _Row:
    depth: int
    name: str
    kind: str
    shape: tuple[int, ...] | None
    params: int


def count_params(params: Params) -> int:
    """Number of scalars in a parameter pytree (arrays or ShapeDtypeStructs)."""
    return int(sum(math.prod(np.shape(leaf)) for leaf in jax.tree.leaves(params)))


def _param_bytes(params: Params) -> int:
    return int(sum(math.prod(np.shape(x)) * jnp.dtype(x.dtype).itemsize for x in jax.tree.leaves(params)))


def _out_struct(obj: Any, params: Params, xs: jax.ShapeDtypeStruct) -> jax.ShapeDtypeStruct:
    out = jax.eval_shape(lambda p, x: obj.apply(p, x), params, xs)
    return out[0] if isinstance(out, tuple) else out


def _describe(obj: Any) -> str:
    if isinstance(obj, RNN):
        cell = obj.cell
        flag = ", reverse" if obj.reverse else ""
        return f"RNN[{type(cell).__name__}({cell.hidden_size}{flag})]"
    if isinstance(obj, Bidirectional):
        return f"Bidirectional[{obj.merge}]"
    return type(obj).__name__


def _walk(name: str, obj: Any, params: Params, xs: jax.ShapeDtypeStruct, depth: int, rows: list[_Row]) -> Any:
    """Appends `obj`'s rows (and its children's) to `rows`; returns its output's ShapeDtypeStruct."""
    row = _Row(depth, name, _describe(obj), None, count_params(params))
    rows.append(row)
    if isinstance(obj, Stacked):
        h = xs
        for i, layer in enumerate(obj.layers):
            h = _walk(f"layer_{i}", layer, params[f"layer_{i}"], h, depth + 1, rows)
        out = h
    elif isinstance(obj, Bidirectional):
        for sub in ("forward", "backward"):
            _walk(sub, getattr(obj, sub), params[sub], xs, depth + 1, rows)
        out = _out_struct(obj, params, xs)
    elif hasattr(obj, "layer") and isinstance(params, dict) and "layer" in params:
        rows.pop()  # a model is shown as its parts
        out = _model_rows(obj, params, xs, depth, rows)
    else:
        out = _out_struct(obj, params, xs)
    row.shape = tuple(out.shape)
    return out


def _model_rows(model: Any, params: Params, xs: jax.ShapeDtypeStruct, depth: int, rows: list[_Row]) -> Any:
    """Rows of a jaxrnn model (or any object with ``.layer`` and ``params["layer"]``): its stages in order."""
    feats = xs
    if "embed" in params:
        table = params["embed"]["table"]
        feats = jax.ShapeDtypeStruct((*xs.shape, table.shape[-1]), table.dtype)
        rows.append(_Row(depth, "embed", f"Embedding({table.shape[0]}, {table.shape[1]})", feats.shape, count_params(params["embed"])))
    ys = _walk("layer", model.layer, params["layer"], feats, depth, rows)
    how = getattr(model, "pool", None)
    if isinstance(how, str):
        time_axis = 0 if getattr(model.layer, "time_major", False) else len(ys.shape) - 2
        pooled = tuple(d for i, d in enumerate(ys.shape) if i != time_axis)
        rows.append(_Row(depth, "pool", f"Pool[{how}]", pooled, 0))
    out = _out_struct(model, params, xs)
    others = {k: v for k, v in params.items() if k not in ("embed", "layer")}
    if others:
        kinds = ", ".join(sorted(others))
        rows.append(_Row(depth, kinds, "Dense" if set(others) == {"head"} else "params", tuple(out.shape), count_params(others)))
    return out


def _fmt_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def summary(
    model: Any,
    params: Params | None,
    input_shape: Sequence[int],
    *,
    dtype: Any = None,
    show: bool = False,
) -> str:
    """A table of a model's layers, their output shapes and parameter counts, like Keras ``model.summary()``.

    Walks `RNN`, `Bidirectional`, `Stacked` and the `jaxrnn.models` heads; any other object with
    ``apply(params, xs)`` becomes one row. Output shapes are computed with `jax.eval_shape`, so
    nothing runs.

    Args:
      model: a jaxrnn layer or model.
      params: its parameters (arrays or ShapeDtypeStructs); None to take the shapes ``init`` would make.
      input_shape: the shape of the input, batch dims included: ``(batch, T, F)`` for a layer,
        ``(batch, T)`` of token ids for a `LanguageModel`.
      dtype: the input dtype (default float32, or int32 for token models).
      show: also print the table.

    Returns:
      The table as a string.

    Example::

        layer = jaxrnn.Stacked([jaxrnn.RNN(jaxrnn.LSTM(32))] * 2)
        print(jaxrnn.summary(layer, None, (16, 50, 8)))
    """
    input_shape = tuple(input_shape)
    if not input_shape or not all(isinstance(d, (int, np.integer)) and d >= 0 for d in input_shape):
        raise ValueError(f"summary: argument 'input_shape' must be a tuple of non-negative ints, got {input_shape!r}")
    if not hasattr(model, "apply") or not hasattr(model, "init"):
        raise TypeError(f"summary: argument 'model' must be a jaxrnn layer or model (with init/apply), got {type(model).__name__}")
    tokens = hasattr(model, "embed") and hasattr(model, "vocab_size")
    if params is None:
        key = jax.random.key(0)
        init_args = () if tokens else (input_shape[-1],)
        params = jax.eval_shape(lambda: model.init(key, *init_args))
    xs = jax.ShapeDtypeStruct(input_shape, dtype or (jnp.int32 if tokens else jnp.float32))
    rows: list[_Row] = []
    _walk(type(model).__name__, model, params, xs, 0, rows)
    return _render(type(model).__name__, rows, params, show)


def _render(title: str, rows: list[_Row], params: Params, show: bool) -> str:
    cells = [("  " * r.depth + f"{r.name} ({r.kind})", str(r.shape), f"{r.params:,}") for r in rows]
    header = ("Layer (type)", "Output shape", "Param #")
    widths = [max(len(c[i]) for c in [header, *cells]) for i in range(3)]
    line = lambda c: f"{c[0]:<{widths[0]}}   {c[1]:<{widths[1]}}   {c[2]:>{widths[2]}}"  # noqa: E731
    rule = "=" * (sum(widths) + 6)
    total = count_params(params)
    text = "\n".join(
        [
            f'Model: "{title}"',
            rule,
            line(header),
            rule,
            *(line(c) for c in cells),
            rule,
            f"Total params: {total:,} ({_fmt_bytes(_param_bytes(params))})",
        ]
    )
    if show:
        print(text)
    return text
