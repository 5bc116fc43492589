"""The cell protocol: a bundle of pure functions over a plain-dict pytree of parameters.

A cell splits one recurrence step into a time-parallel part and a sequential part:

    project(params, xs) -> us              # input matmul for every step at once (one big GEMM)
    recur(params, carry, u_t) -> (carry, y_t)   # what `jax.lax.scan` repeats
    step(params, carry, x_t) = recur(params, carry, project(params, x_t))

so a layer can run the input projection for all T steps as one GEMM and keep only the recurrent
matmul and the gate math inside the loop (the layout cuDNN uses; Appleyard et al. 2016).
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


def glorot_blocks(key: PRNGKey, fan_in: int, hidden: int, blocks: int, dtype: Any) -> Array:
    """Glorot-uniform [fan_in, blocks * hidden] kernel, each gate block scaled by its own fan-in/out."""
    init = jax.nn.initializers.glorot_uniform()
    keys = jax.random.split(key, blocks)
    return jnp.concatenate([init(k, (fan_in, hidden), dtype) for k in keys], axis=-1)


def orthogonal_blocks(key: PRNGKey, rows: int, hidden: int, blocks: int, dtype: Any) -> Array:
    """[rows, blocks * hidden] kernel whose every gate block is an orthogonal matrix (Saxe et al. 2014)."""
    init = jax.nn.initializers.orthogonal()
    keys = jax.random.split(key, blocks)
    return jnp.concatenate([init(k, (rows, hidden), dtype) for k in keys], axis=-1)


@dataclasses.dataclass(frozen=True)
class Cell(abc.ABC):
    """Base class of jaxrnn cells: an immutable, hashable config whose methods are pure.

    Subclasses set `num_blocks` (gates stacked along the last axis of the kernels) and implement
    `init`, `recur` and, if their carry is not a single array, `initial_carry` and `hidden`.
    Parameters are named ``w_ih`` ``[input, blocks * hidden]`` (input kernel), ``w_hh``
    ``[hidden, blocks * hidden]`` (recurrent kernel) and ``b`` ``[blocks * hidden]`` (bias),
    with gates in PyTorch order, so ``x @ w_ih`` is the time-parallel projection.
    """

    hidden_size: int
    _: dataclasses.KW_ONLY
    use_bias: bool = True
    dtype: Any = jnp.float32

    num_blocks = 1

    def __post_init__(self) -> None:
        name = type(self).__name__
        _checks.check_positive_int(name, "hidden_size", self.hidden_size)
        _checks.check_dtype_like(name, "dtype", self.dtype)
        if not isinstance(self.use_bias, bool):
            raise TypeError(f"{name}: argument 'use_bias' must be a bool, got {self.use_bias!r}")

    # ---- the protocol -------------------------------------------------------------------------

    @abc.abstractmethod
    def init(self, key: PRNGKey, input_size: int) -> Params:
        """Returns freshly initialised parameters for inputs with `input_size` features."""

    @abc.abstractmethod
    def recur(self, params: Params, carry: Carry, u: Array) -> tuple[Carry, Array]:
        """One sequential step from the projected input `u` (see `project`)."""

    def project(self, params: Params, xs: Array) -> Array:
        """Input projection ``xs @ w_ih + b`` for any leading dims: the time-parallel part of a step."""
        us = xs @ params["w_ih"]
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

    # ---- derived facts ------------------------------------------------------------------------

    @property
    def output_size(self) -> int:
        return self.hidden_size

    def input_size(self, params: Params) -> int:
        """The number of input features `params` were initialised for."""
        return int(params["w_ih"].shape[0])

    def param_shapes(self, input_size: int) -> Params:
        """ShapeDtypeStructs of `init(key, input_size)`, computed without allocating."""
        return _param_shapes(self, input_size)

    def check_params(self, fn: str, params: Params) -> int:
        """Raises a clear error unless `params` has this cell's structure; returns the input size."""
        if not isinstance(params, dict) or "w_ih" not in params or not hasattr(params["w_ih"], "shape"):
            raise ValueError(
                f"{fn}: argument 'params' must be the dict returned by {type(self).__name__}.init "
                f"(keys {sorted(self.param_shapes(1))}), got {type(params).__name__}"
                + (f" with keys {sorted(params)}" if isinstance(params, dict) else "")
            )
        input_size = int(params["w_ih"].shape[0])
        _checks.check_tree_like(fn, "params", params, self.param_shapes(input_size))
        return input_size


@functools.lru_cache(maxsize=256)
def _param_shapes(cell: Cell, input_size: int) -> Params:
    return jax.eval_shape(lambda: cell.init(jax.random.key(0), input_size))
