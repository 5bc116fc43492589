"""The cell protocol: a bundle of pure functions over a plain-dict pytree of parameters.

A cell splits one recurrence step into a time-parallel part and a sequential part:

    project(params, xs) -> us              # input matmul for every step at once (one big GEMM)
    recur(params, carry, u_t) -> (carry, y_t)   # what `jax.lax.scan` repeats
    step(params, carry, x_t) = recur(params, carry, project(params, x_t))

so a layer can run the input projection for all T steps as one GEMM and keep only the recurrent
matmul and the gate math inside the loop (the layout cuDNN uses; Appleyard et al. 2016).

``recur`` also takes an optional keyword ``recurrent_mask``: a multiplier of ``h_{t-1}`` where it
enters the recurrent kernel only (not where the carry flows on), which is how `jaxrnn.RNN` applies
variational recurrent dropout (Gal & Ghahramani 2016).

Most cells' ``recur`` is one dense matmul ``hh = h_{t-1} @ w_hh`` followed by pointwise gate math.
Such a cell says so with its `recurrence` kind and implements ``update(params, carry, z)`` (the gate
math from ``z = u + hh``, or from the pair ``z = (u, hh)``); `jaxrnn.RNN` then uses a custom VJP whose
backward keeps only ``dhh @ w_hh.T`` in the loop and forms the weight gradients as single GEMMs over
all time steps (see `jaxrnn.layers.fused`).
"""

from __future__ import annotations

import abc
import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp

from jaxrnn import _checks
from jaxrnn._typing import Array, Carry, Params, PRNGKey

Initializer = Callable[[PRNGKey, tuple[int, ...], Any], Array]


def glorot_blocks(
    key: PRNGKey, fan_in: int, hidden: int, blocks: int, dtype: Any, *, window: tuple[int, ...] = ()
) -> Array:
    """Glorot-uniform [*window, fan_in, blocks * hidden] kernel, each gate block scaled by its own
    fan-in/out (a convolution kernel when `window` is its spatial size)."""
    init = jax.nn.initializers.glorot_uniform()
    keys = jax.random.split(key, blocks)
    return jnp.concatenate([init(k, (*window, fan_in, hidden), dtype) for k in keys], axis=-1)


def orthogonal_blocks(
    key: PRNGKey, rows: int, hidden: int, blocks: int, dtype: Any, *, window: tuple[int, ...] = ()
) -> Array:
    """[*window, rows, blocks * hidden] kernel whose every gate block is an orthogonal matrix (Saxe et
    al. 2014); for a convolution kernel, orthonormal columns over the flattened window and rows."""
    init = jax.nn.initializers.orthogonal()
    keys = jax.random.split(key, blocks)
    # QR has no half-precision kernel (LAPACK): draw in >= float32, then cast.
    work = jnp.promote_types(dtype, jnp.float32)
    return jnp.concatenate([init(k, (*window, rows, hidden), work) for k in keys], axis=-1).astype(dtype)


@dataclasses.dataclass(frozen=True)
class Cell(abc.ABC):
    """Base class of jaxrnn cells: an immutable, hashable config whose methods are pure.

    Subclasses set `num_blocks` (gates stacked along the last axis of the kernels) and implement
    `init`, `recur` and, if their carry is not a single array, `initial_carry` and `hidden`.
    Parameters are named ``w_ih`` ``[input, blocks * hidden]`` (input kernel), ``w_hh``
    ``[hidden, blocks * hidden]`` (recurrent kernel) and ``b`` ``[blocks * hidden]`` (bias),
    with gates in PyTorch order, so ``x @ w_ih`` is the time-parallel projection.

    Common options: ``use_bias``; ``dtype`` (of the parameters); ``compute_dtype`` (e.g.
    ``jnp.bfloat16``: the dense matmuls take operands in it and accumulate in the parameters' dtype,
    so the gate math and the carry stay float32 — mixed precision with an f32 carry).
    """

    hidden_size: int
    _: dataclasses.KW_ONLY
    use_bias: bool = True
    dtype: Any = jnp.float32
    compute_dtype: Any = None

    num_blocks = 1

    def __post_init__(self) -> None:
        name = type(self).__name__
        _checks.check_positive_int(name, "hidden_size", self.hidden_size)
        _checks.check_dtype_like(name, "dtype", self.dtype)
        if self.compute_dtype is not None:
            _checks.check_dtype_like(name, "compute_dtype", self.compute_dtype)
        if not isinstance(self.use_bias, bool):
            raise TypeError(f"{name}: argument 'use_bias' must be a bool, got {self.use_bias!r}")

    # ---- the protocol -------------------------------------------------------------------------

    @abc.abstractmethod
    def init(self, key: PRNGKey, input_size: int) -> Params:
        """Returns freshly initialised parameters for inputs with `input_size` features."""

    def recur(
        self, params: Params, carry: Carry, u: Array, *, recurrent_mask: Array | None = None
    ) -> tuple[Carry, Array]:
        """One sequential step from the projected input `u` (see `project`).

        `recurrent_mask` (shaped like ``hidden(carry)``) multiplies ``h_{t-1}`` where it enters the
        recurrent kernel and nowhere else: variational recurrent dropout (Gal & Ghahramani 2016).
        Cells with a `recurrence` kind get this from `update`; others override it.
        """
        if self.recurrence is None:
            raise NotImplementedError(f"{type(self).__name__} must implement recur() or update()")
        return self.update(params, carry, self.combine(u, self.recurrent_product(params, carry, recurrent_mask)))

    def recurrent_product(self, params: Params, carry: Carry, recurrent_mask: Array | None = None) -> Array:
        """``hh = (h_{t-1} * recurrent_mask) @ w_hh``: the one matmul of the sequential part."""
        return self.matmul(masked(self.hidden(carry), recurrent_mask), params["w_hh"])

    def matmul(self, a: Array, w: Array) -> Array:
        """``a @ w``; with ``compute_dtype`` (e.g. bfloat16) the operands are cast to it and the
        product accumulates in the wider of their own dtypes, so gates and carry stay in float32."""
        if self.compute_dtype is None:
            return a @ w
        out = jnp.promote_types(a.dtype, w.dtype)
        return jnp.matmul(a.astype(self.compute_dtype), w.astype(self.compute_dtype), preferred_element_type=out)

    # ---- the split that RNN's fused backward uses ---------------------------------------------

    @property
    def recurrence(self) -> str | None:
        """``"sum"`` if `update` needs only ``u + h @ w_hh``; ``"pair"`` if it needs ``(u, hh)``
        apart; None if the recurrence is not one dense matmul of ``hidden(carry)`` by ``w_hh``."""
        return None

    def combine(self, u: Array, hh: Array) -> Any:
        """What `update` reads of the projected input and the recurrent product (and what the fused
        backward saves per step): their sum, or the pair."""
        return u + hh if self.recurrence == "sum" else (u, hh)

    def update(self, params: Params, carry: Carry, z: Any) -> tuple[Carry, Array]:
        """The pointwise rest of a step, from ``z = combine(u, h_{t-1} @ w_hh)``. It may read any
        parameter except ``w_ih``, ``w_hh`` and ``b`` (which act only through ``u`` and ``hh``)."""
        raise NotImplementedError(f"{type(self).__name__} has no fused update")

    @property
    def projects_densely(self) -> bool:
        """Whether `project` is exactly ``xs @ w_ih (+ b)``. Then, for a ``"sum"`` recurrence, a step's
        ``u + hh`` is one GEMM of ``[x_t, h_{t-1}]`` by the stacked ``[w_ih; w_hh]``, which the fused
        loop runs when it does not hoist the input projection (one kernel instead of two and an add:
        forward 1.3-1.6x faster on XLA:CPU at (16,512,64,256) and (1,1000,8,64))."""
        return type(self).project is Cell.project

    def project(self, params: Params, xs: Array) -> Array:
        """Input projection ``xs @ w_ih + b`` for any leading dims: the time-parallel part of a step."""
        us = self.matmul(xs, params["w_ih"])
        if "b" in params:
            us = us + params["b"]
        return us

    def step(self, params: Params, carry: Carry, x: Array) -> tuple[Carry, Array]:
        """One step from the raw input `x` ``[*batch, input]``: for streaming / online use."""
        return self.recur(params, carry, self.project(params, x))

    def initial_carry(self, params: Params, batch_shape: tuple[int, ...] = ()) -> Carry:
        """Zero carry for `batch_shape` (the hidden array itself for single-array carries)."""
        return jnp.zeros((*tuple(batch_shape), self.hidden_size), params["w_hh"].dtype)

    @staticmethod
    def hidden(carry: Carry) -> Array:
        """The hidden state ``h`` inside a carry (the carry itself unless overridden)."""
        return carry

    @staticmethod
    def with_hidden(carry: Carry, h: Array) -> Carry:
        """`carry` with its hidden state replaced by `h` (inverse of `hidden`)."""
        return h

    def init_kernels(
        self,
        key: PRNGKey,
        input_size: int,
        *,
        rows: int | None = None,
        window: tuple[int, ...] = (),
        recurrent_window: tuple[int, ...] = (),
    ) -> Params:
        """The parameters every gated cell starts from: ``w_ih`` (Glorot uniform per gate block),
        ``w_hh`` (orthogonal per block, `rows` input rows, default H) and a zero ``b`` if
        ``use_bias``. `window` / `recurrent_window` make them convolution kernels."""
        _checks.check_positive_int(f"{type(self).__name__}.init", "input_size", input_size)
        k_ih, k_hh = jax.random.split(key)
        H, G = self.hidden_size, self.num_blocks
        params = {
            "w_ih": glorot_blocks(k_ih, input_size, H, G, self.dtype, window=window),
            "w_hh": orthogonal_blocks(k_hh, rows or H, H, G, self.dtype, window=recurrent_window),
        }
        if self.use_bias:
            params["b"] = jnp.zeros((G * H,), self.dtype)
        return params

    # ---- derived facts ------------------------------------------------------------------------

    @property
    def output_size(self) -> int:
        return self.hidden_size

    @property
    def num_feature_axes(self) -> int:
        """Trailing axes of one step's input: 1 (features) for dense cells, N + 1 (grid, channels)
        for convolutional cells over N-D grids, whose `initial_carry` ``batch_shape`` includes the grid."""
        return 1

    def input_size(self, params: Params) -> int:
        """The number of input features `params` were initialised for."""
        return int(params["w_ih"].shape[-2])

    def param_shapes(self, input_size: int) -> Params:
        """ShapeDtypeStructs of `init(key, input_size)`, computed without allocating."""
        return _param_shapes(self, input_size)

    def check_params(self, fn: str, params: Params) -> int:
        """Raises a clear error unless `params` has this cell's structure; returns the input size."""
        if (
            not isinstance(params, dict)
            or "w_ih" not in params
            or not hasattr(params["w_ih"], "shape")
            or len(params["w_ih"].shape) < 2
        ):
            raise ValueError(
                f"{fn}: argument 'params' must be the dict returned by {type(self).__name__}.init "
                f"(keys {sorted(self.param_shapes(1))}), got {type(params).__name__}"
                + (f" with keys {sorted(params)}" if isinstance(params, dict) else "")
            )
        input_size = self.input_size(params)
        _checks.check_tree_like(fn, "params", params, self.param_shapes(input_size))
        return input_size


KERNEL_KEYS = ("w_ih", "w_hh", "b")  # act only through u = project(x) and hh = h @ w_hh


def update_params(params: Params) -> Params:
    """The parameters `Cell.update` may read: all but the kernels and the bias, which act only
    through its argument ``z``."""
    return {k: v for k, v in params.items() if k not in KERNEL_KEYS}


def masked(h: Array, mask: Array | None) -> Array:
    """``h * mask``, or `h` itself when there is no mask (no extra op in the common path)."""
    return h if mask is None else h * mask


@functools.lru_cache(maxsize=256)
def _param_shapes(cell: Cell, input_size: int) -> Params:
    return jax.eval_shape(lambda: cell.init(jax.random.key(0), input_size))
