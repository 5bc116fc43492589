"""Data parallelism with `jax.sharding`: one `Mesh` over the devices, the batch split along it, the
parameters and optimizer state replicated.

The train step stays the single-device function of `make_train_step`; it is compiled with
``in_shardings`` (state replicated, batch rows split across the mesh) and ``out_shardings`` (state and
metrics replicated). XLA's SPMD partitioner then runs the forward and backward pass on each device's
rows and inserts the all-reduce of the gradients itself (the loss is a mean over the *global* batch), so
every device applies the same update and the loss and gradient-norm diagnostics are those of the
global batch, exactly what one device computes up to the order of floating-point sums.

The same code runs on one host with several GPUs, and on several hosts after
``jax.distributed.initialize()``: there `jax.devices()` lists every host's devices, and each process
feeds only its own rows of every batch (`shard_batch` assembles the global array with
`jax.make_array_from_process_local_data`).

Example::

    mesh = data_mesh()                                   # all devices, axis "data"
    trainer = make_train_step(model, task.loss, optax.adam(1e-3), mesh=mesh)
    state = replicate(trainer.init(params), mesh)
    state, metrics = trainer.step(state, task.sample(key, 64))   # 64 rows split over the devices

References:
  Xu et al., "GSPMD: General and Scalable Parallelization for ML Computation Graphs", 2021.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def data_mesh(devices: Sequence[jax.Device] | None = None, *, axis_name: str = DATA_AXIS) -> Mesh:
    """A one-axis `Mesh` for data parallelism.

    Args:
      devices: the devices to use (default: `jax.devices()`, every device of every process after
        ``jax.distributed.initialize()``).
      axis_name: the mesh axis the batch is split along.

    Example::

        mesh = data_mesh()                     # Mesh('data': 4) on 4 devices
        mesh = data_mesh(jax.devices()[:2])    # two of them
    """
    if not isinstance(axis_name, str) or not axis_name:
        raise ValueError(f"data_mesh: argument 'axis_name' must be a non-empty str, got {axis_name!r}")
    if devices is None:
        devices = jax.devices()
    devices = list(devices)
    if not devices or not all(isinstance(d, jax.Device) for d in devices):
        kinds = sorted({type(d).__name__ for d in devices}) or ["nothing"]
        raise TypeError(
            f"data_mesh: argument 'devices' must be a non-empty sequence of jax.Device, got {', '.join(kinds)}"
        )
    if len(set(devices)) != len(devices):
        raise ValueError(f"data_mesh: argument 'devices' must not repeat a device, got {devices}")
    return Mesh(np.asarray(devices, dtype=object), (axis_name,))


def check_mesh(fn: str, mesh: Any) -> Mesh:
    """Returns `mesh` after checking it is a `jax.sharding.Mesh`."""
    if not isinstance(mesh, Mesh):
        raise TypeError(
            f"{fn}: argument 'mesh' must be a jax.sharding.Mesh (e.g. jaxrnn.train.data_mesh()), "
            f"got {type(mesh).__name__}"
        )
    return mesh


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Rows (the leading axis) split over all of `mesh`'s axes; the other axes whole on each device."""
    return NamedSharding(mesh, PartitionSpec(tuple(mesh.axis_names)))


def replicated(mesh: Mesh) -> NamedSharding:
    """A full copy on every device of `mesh`."""
    return NamedSharding(mesh, PartitionSpec())


def _put(tree: Any, sharding: NamedSharding) -> Any:
    def put(x: Any) -> Any:
        if isinstance(x, jax.Array):
            if x.sharding == sharding:
                return x  # already placed (e.g. the state a sharded step returned): no copy
            if jax.process_count() == 1 or not x.is_fully_addressable:
                return jax.device_put(x, sharding)  # one process, or a global array: copy / reshard on device
            if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):  # typed keys have no numpy form
                return jax.random.wrap_key_data(put(jax.random.key_data(x)), impl=jax.random.key_impl(x))
            x = np.asarray(x)  # this process's data, assembled into the global array below
        return jax.make_array_from_process_local_data(sharding, x)

    return jax.tree.map(put, tree)


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Copies every leaf of `tree` (params, optimizer state, a `TrainState`) to every device of `mesh`.

    With several processes each one passes the same values (e.g. the same seed, or the same checkpoint).
    """
    check_mesh("replicate", mesh)
    return _put(tree, replicated(mesh))


def shard_batch(batch: Any, mesh: Mesh, *, fn: str = "shard_batch", arg: str = "batch") -> Any:
    """Splits the rows of every leaf of `batch` (a `jaxrnn.tasks.Batch` or any pytree of arrays with a
    leading batch axis) across the devices of `mesh`.

    On one process `batch` is the whole global batch. With several processes (after
    ``jax.distributed.initialize()``), each process passes only its own rows, and the result is the
    global array of all processes' rows in process order (`jax.make_array_from_process_local_data`).
    The rows a process holds must split evenly over its devices.

    Args:
      batch: host (numpy) or device arrays, leading axis = rows.
      mesh: e.g. `data_mesh()`.
      fn, arg: named in the error message (the caller and its argument).

    Raises:
      ValueError: the number of rows is not a multiple of this process's device count in `mesh`, or
        the leaves disagree on it.

    Example::

        batch = shard_batch(task.sample(key, 64), data_mesh())
        [s.data.shape for s in batch.xs.addressable_shards]     # 4 x (16, T, 2) on 4 devices
    """
    check_mesh(fn, mesh)
    sharding = batch_sharding(mesh)
    leaves = jax.tree.leaves(batch)
    if not leaves:
        raise ValueError(f"{fn}: argument '{arg}' holds no arrays")
    local = len(mesh.local_devices)
    rows = set()
    for x in leaves:
        shape = np.shape(x)
        if not shape:
            raise ValueError(f"{fn}: argument '{arg}' must hold arrays with a leading batch axis, got a scalar")
        rows.add(shape[0])
    if len(rows) != 1:
        raise ValueError(f"{fn}: argument '{arg}' must have the same number of rows in every array, got {sorted(rows)}")
    (n,) = rows
    if all(isinstance(x, jax.Array) and x.sharding == sharding for x in leaves):
        return batch
    if n % local:
        raise ValueError(
            f"{fn}: argument '{arg}' must have a batch size divisible by the {local} devices of the mesh"
            f"{' on this process' if jax.process_count() > 1 else ''}, got batch size {n} "
            f"(use a multiple of {local}, e.g. {(n // local + 1) * local})"
        )
    return _put(batch, sharding)


class ShardedFunction:
    """``fn(state_or_params, batch, *rest, **kwargs)`` compiled for a mesh: the batch split by rows,
    everything else replicated, every output replicated. Calling it first places the arguments (a
    no-op for arrays already placed), so host batches can be passed directly.

    Attributes:
      mesh: the mesh.
      jitted: the `jax.jit` of ``(first, batch, rest, kwargs) -> fn(first, batch, *rest, **kwargs)`` with
        these shardings (None when built with ``jit=False``).
    """

    def __init__(self, fn: Callable[..., Any], mesh: Mesh, *, jit: bool = True, name: str = "step"):
        self.fn, self.mesh, self.name = fn, mesh, name
        self._rep = replicated(mesh)
        self.jitted = None
        if jit:
            # The trailing arguments travel as a tuple and a dict, so one in_shardings fits any of them.
            def packed(first: Any, batch: Any, rest: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                return fn(first, batch, *rest, **kwargs)

            self.jitted = jax.jit(
                packed, in_shardings=(self._rep, batch_sharding(mesh), self._rep, self._rep), out_shardings=self._rep
            )

    def place(self, first: Any, batch: Any, *rest: Any, **kwargs: Any) -> tuple[Any, Any, tuple, dict[str, Any]]:
        """``(first, batch, rest, kwargs)`` as the compiled function takes them."""
        batch = shard_batch(batch, self.mesh, fn=self.name, arg="batch")
        return _put(first, self._rep), batch, _put(rest, self._rep), _put(kwargs, self._rep)

    def __call__(self, first: Any, batch: Any, *rest: Any, **kwargs: Any) -> Any:
        first, batch, rest, kwargs = self.place(first, batch, *rest, **kwargs)
        if self.jitted is None:
            return self.fn(first, batch, *rest, **kwargs)
        return self.jitted(first, batch, rest, kwargs)

    def lower(self, first: Any, batch: Any, *rest: Any, **kwargs: Any) -> Any:
        """``jitted.lower`` on the placed arguments (``.compile().as_text()`` shows the all-reduce)."""
        if self.jitted is None:
            raise ValueError(f"{self.name}: built with jit=False, nothing to lower")
        return self.jitted.lower(*self.place(first, batch, *rest, **kwargs))
