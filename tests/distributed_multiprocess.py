"""One of two processes of a multi-process data-parallel run on this machine, run by
tests/test_distributed.py.

Run as ``XLA_FLAGS=--xla_force_host_platform_device_count=2 python tests/distributed_multiprocess.py
PROCESS_ID NUM_PROCESSES PORT CHECKPOINT_DIR OUT.json`` once per process. The processes meet through
`jax.distributed.initialize` at 127.0.0.1:PORT and exchange gradients through Gloo (JAX's CPU
collectives), so this exercises the multi-host code path (a mesh spanning processes, each process
feeding only its own rows with `jax.make_array_from_process_local_data`, process 0 writing the
checkpoints) without a second machine. It writes what it measured to OUT.json; the assertions live in
tests/test_distributed.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jax

process_id, num_processes, port = (int(a) for a in sys.argv[1:4])
checkpoint_dir, out_path = Path(sys.argv[4]), Path(sys.argv[5])
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(
    coordinator_address=f"127.0.0.1:{port}", num_processes=num_processes, process_id=process_id, initialization_timeout=120
)

import numpy as np  # noqa: E402

from distributed_check import BATCH, EVAL, TRAIN, history_diffs, run_fit  # noqa: E402
from jaxrnn.train import data_mesh, list_checkpoints, shard_batch  # noqa: E402

ROWS = BATCH // num_processes


def local_rows(data):
    """This process's rows of every global batch (what a per-host input pipeline would load)."""
    lo = process_id * ROWS
    return lambda k: jax.tree.map(lambda x: np.asarray(x)[lo:lo + ROWS], data(k))


mesh = data_mesh()
result = {
    "process_index": jax.process_index(),
    "process_count": jax.process_count(),
    "device_count": jax.device_count(),
    "local_device_count": jax.local_device_count(),
}
batch = shard_batch(local_rows(TRAIN)(0), mesh)
result["global_shape"] = list(batch.xs.shape)
result["local_shards"] = sorted([s.index[0].start, s.index[0].stop] for s in batch.xs.addressable_shards)
result["local_rows_match"] = all(
    np.array_equal(np.asarray(s.data), np.asarray(TRAIN(0).xs)[s.index]) for s in batch.xs.addressable_shards
)
try:
    shard_batch(jax.tree.map(lambda x: x[:3], local_rows(TRAIN)(0)), mesh, fn="fit", arg="train_data")
except ValueError as err:
    result["odd_error"] = str(err)

single = run_fit(None, steps=8)  # the reference: the whole batch on this process's first device
kwargs = {"mesh": mesh, "train_data": local_rows(TRAIN), "eval_data": local_rows(EVAL)}
first = run_fit(checkpoint_dir, steps=4, **kwargs)
result["checkpoints_after_first"] = [s for s, _ in list_checkpoints(checkpoint_dir)]
resumed = run_fit(checkpoint_dir, steps=8, **kwargs)  # both processes resume from process 0's checkpoint
result["checkpoints_after_resume"] = [s for s, _ in list_checkpoints(checkpoint_dir)]
result["resumed_steps"] = resumed.history["step"]
result["sharded_loss"] = resumed.history["loss"]
result["single_loss"] = single.history["loss"]
result["diffs"] = history_diffs(resumed, single)
result["params_global"] = all(not x.is_fully_addressable and x.sharding.is_fully_replicated for x in jax.tree.leaves(resumed.params))
out_path.write_text(json.dumps(result, indent=1))
