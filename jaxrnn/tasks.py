"""Synthetic long-memory tasks, generated on the fly (no data to download), as jittable functions.

- The adding problem (Hochreiter & Schmidhuber 1997; in the form of Le et al. 2015 and Arjovsky et al.
  2016): a sequence of values ``U[0, 1]``, one marked in each half; predict the sum of the two marked
  values. Predicting the mean, 1, gives MSE ``Var(U1 + U2) = 1/6``: the baseline a model must beat.
- The copy-memory task (Arjovsky, Shah & Bengio 2016): memorise 10 symbols, wait ``T`` steps, then
  reproduce them. Predicting blanks and then uniform guesses gives cross-entropy ``10 ln 8 / (T + 20)``.

Each task is an immutable config with ``sample(key, batch_size) -> Batch``, ``loss(predictions, batch)``,
``baseline``, and ``stream(batch_size, seed)``: batch ``k`` of a stream is a pure function of ``(seed, k)``,
which is what lets `jaxrnn.train.fit` resume a run exactly.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxrnn import _checks
from jaxrnn._typing import Array, PRNGKey


class Batch(NamedTuple):
    """A batch: inputs ``xs`` ``[B, T, F]``, ``targets``, and optional ``lengths`` ``[B]``."""

    xs: Array
    targets: Array
    lengths: Array | None = None


def adding_problem(key: PRNGKey, batch_size: int, length: int) -> Batch:
    """Samples the adding problem: ``xs`` ``[B, T, 2]`` (value, marker), ``targets`` ``[B, 1]``.

    Channel 0 holds values ``U[0, 1]``; channel 1 is 1 at exactly two steps, one drawn uniformly from
    the first half ``[0, T // 2)`` and one from the second ``[T // 2, T)``, else 0. The target is the
    sum of the two marked values.

    Example::

        batch = adding_problem(jax.random.key(0), batch_size=32, length=100)
        batch.xs.shape, batch.targets.shape      # (32, 100, 2), (32, 1)

    References:
      Hochreiter & Schmidhuber, "Long short-term memory", Neural Computation 9(8), 1997 (experiment 4).
      Le, Jaitly & Hinton, "A simple way to initialize recurrent networks of rectified linear units", 2015.
    """
    _checks.check_key("adding_problem", "key", key)
    _checks.check_positive_int("adding_problem", "batch_size", batch_size)
    _checks.check_positive_int("adding_problem", "length", length)
    if length < 2:
        raise ValueError(f"adding_problem: argument 'length' must be >= 2 (one marker per half), got {length}")
    k_values, k_first, k_second = jax.random.split(key, 3)
    values = jax.random.uniform(k_values, (batch_size, length))
    first = jax.random.randint(k_first, (batch_size,), 0, length // 2)
    second = jax.random.randint(k_second, (batch_size,), length // 2, length)
    markers = jax.nn.one_hot(first, length) + jax.nn.one_hot(second, length)
    xs = jnp.stack([values, markers], axis=-1)
    targets = jnp.sum(values * markers, axis=-1, keepdims=True)
    return Batch(xs=xs, targets=targets)


def copy_memory(
    key: PRNGKey, batch_size: int, delay: int, *, num_symbols: int = 8, copy_length: int = 10
) -> Batch:
    """Samples the copy-memory task: ``xs`` one-hot ``[B, delay + 2 copy_length, num_symbols + 2]``,
    ``targets`` int ``[B, delay + 2 copy_length]`` in ``[0, num_symbols]``.

    Categories: 0 is the blank, ``1..num_symbols`` the symbols, ``num_symbols + 1`` the delimiter (input
    only). Input: ``copy_length`` random symbols, ``delay - 1`` blanks, the delimiter, ``copy_length``
    blanks. Target: ``delay + copy_length`` blanks, then the ``copy_length`` symbols.

    Example::

        batch = copy_memory(jax.random.key(0), batch_size=32, delay=100)
        batch.xs.shape, batch.targets.shape      # (32, 120, 10), (32, 120)

    References:
      Arjovsky, Shah & Bengio, "Unitary evolution recurrent neural networks", ICML 2016.
    """
    fn = "copy_memory"
    _checks.check_key(fn, "key", key)
    for arg, value in (("batch_size", batch_size), ("delay", delay), ("num_symbols", num_symbols), ("copy_length", copy_length)):
        _checks.check_positive_int(fn, arg, value)
    symbols = jax.random.randint(key, (batch_size, copy_length), 1, num_symbols + 1)
    blanks = jnp.zeros((batch_size, delay - 1), symbols.dtype)
    tail = jnp.zeros((batch_size, copy_length), symbols.dtype)
    delimiter = jnp.full((batch_size, 1), num_symbols + 1, symbols.dtype)
    inputs = jnp.concatenate([symbols, blanks, delimiter, tail], axis=1)
    targets = jnp.concatenate([jnp.zeros((batch_size, delay + copy_length), symbols.dtype), symbols], axis=1)
    return Batch(xs=jax.nn.one_hot(inputs, num_symbols + 2), targets=targets.astype(jnp.int32))


class Task:
    """Common interface of the task configs: `sample`, `loss`, `baseline`, and a resumable `stream`."""

    name: str
    input_size: int
    output_size: int
    readout: str  # where a model reads its prediction: "last" step or "all" steps

    def sample(self, key: PRNGKey, batch_size: int) -> Batch:
        raise NotImplementedError

    def loss(self, predictions: Array, batch: Batch) -> Array:
        raise NotImplementedError

    @property
    def baseline(self) -> float:
        raise NotImplementedError

    def stream(self, batch_size: int, seed: int) -> Callable[[int], Batch]:
        """``step -> Batch``: batch ``k`` is ``sample(fold_in(key(seed), k), batch_size)``, a pure function
        of ``(seed, k)``; `seed` is a non-negative int below 2**31. Compiled once per task and batch size."""
        fn = f"{type(self).__name__}.stream"
        _checks.check_positive_int(fn, "batch_size", batch_size)
        _checks.check_non_negative_int(fn, "seed", seed)
        if seed >= 2**31:
            raise ValueError(f"{fn}: argument 'seed' must be below 2**31, got {seed}")
        sample = _compiled_sampler(self, batch_size)
        seed_array = jnp.asarray(seed, jnp.int32)
        return lambda step: sample(seed_array, jnp.asarray(step, jnp.uint32))


@functools.lru_cache(maxsize=64)
def _compiled_sampler(task: Task, batch_size: int) -> Callable[[Array, Array], Batch]:
    return jax.jit(lambda seed, step: task.sample(jax.random.fold_in(jax.random.key(seed), step), batch_size))


@dataclasses.dataclass(frozen=True)
class AddingProblem(Task):
    """The adding problem of sequence length `length` (see `adding_problem`); loss: mean squared error.

    Example::

        task = AddingProblem(100)
        batch = task.sample(jax.random.key(0), 64)
        task.loss(jnp.ones((64, 1)), batch)     # about task.baseline = 1/6
    """

    length: int
    name = "adding"
    input_size = 2
    output_size = 1
    readout = "last"

    def __post_init__(self) -> None:
        _checks.check_positive_int("AddingProblem", "length", self.length)
        if self.length < 2:
            raise ValueError(f"AddingProblem: argument 'length' must be >= 2, got {self.length}")

    def sample(self, key: PRNGKey, batch_size: int) -> Batch:
        return adding_problem(key, batch_size, self.length)

    def loss(self, predictions: Array, batch: Batch) -> Array:
        return jnp.mean(jnp.square(predictions - batch.targets))

    @property
    def baseline(self) -> float:
        """MSE of always predicting 1 (the mean of the target): ``Var(U1 + U2) = 2 / 12 = 1/6``."""
        return 1.0 / 6.0


@dataclasses.dataclass(frozen=True)
class CopyMemory(Task):
    """The copy-memory task with `delay` blank steps (see `copy_memory`); loss: mean cross-entropy.

    Predictions are logits ``[B, delay + 2 copy_length, num_symbols + 1]`` (a model reading out every
    step); the loss averages over batch and steps, as in Arjovsky et al. (2016).
    """

    delay: int
    _: dataclasses.KW_ONLY
    num_symbols: int = 8
    copy_length: int = 10
    name = "copy"
    readout = "all"

    def __post_init__(self) -> None:
        for arg in ("delay", "num_symbols", "copy_length"):
            _checks.check_positive_int("CopyMemory", arg, getattr(self, arg))

    @property
    def length(self) -> int:
        return self.delay + 2 * self.copy_length

    @property
    def input_size(self) -> int:  # type: ignore[override]
        return self.num_symbols + 2

    @property
    def output_size(self) -> int:  # type: ignore[override]
        return self.num_symbols + 1

    def sample(self, key: PRNGKey, batch_size: int) -> Batch:
        return copy_memory(key, batch_size, self.delay, num_symbols=self.num_symbols, copy_length=self.copy_length)

    def loss(self, predictions: Array, batch: Batch) -> Array:
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(predictions, batch.targets))

    @property
    def baseline(self) -> float:
        """Cross-entropy of predicting blanks, then uniformly among the symbols: ``copy_length ln(num_symbols) / length``."""
        return self.copy_length * math.log(self.num_symbols) / self.length


TASKS: dict[str, type[Task]] = {"adding": AddingProblem, "copy": CopyMemory}
