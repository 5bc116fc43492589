"""Data-parallel checks on 4 simulated CPU devices, run by tests/test_distributed.py in a subprocess.

Run as ``XLA_FLAGS=--xla_force_host_platform_device_count=4 python tests/distributed_check.py OUT.json``
(the flag must be set before JAX starts, hence the separate process). It measures and writes to
OUT.json; the assertions live in tests/test_distributed.py. Every comparison is between a run
sharded over the mesh and the same computation on one device (or, for the gradient, the mean of
per-shard gradients computed one shard at a time), so the reference is the single-device code path,
itself tested against Adam written out in tests/test_train.py.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxrnn
from jaxrnn.models import SequenceRegressor
from jaxrnn.tasks import AddingProblem, Batch
from jaxrnn.train import NonFiniteError, data_mesh, fit, list_checkpoints, make_train_step, shard_batch

TASK = AddingProblem(8)
BATCH = 8
# Two layers with dropout between them: the step's key must give every device its rows' slice of the
# same dropout mask as one device draws for the whole batch.
MODEL = SequenceRegressor(jaxrnn.Stacked([jaxrnn.RNN(jaxrnn.LSTM(4)), jaxrnn.RNN(jaxrnn.GRU(4))], dropout=0.25), output_size=1)
OPTIMIZER = optax.adam(1e-2)


def with_lengths(stream, batch_size: int, length: int):
    """Batches of `stream` with padded lengths in [length - 2, length] (so `lengths` is sharded too)."""

    def data(k: int) -> Batch:
        batch = stream(k)
        lengths = length - (k + np.arange(batch_size)) % 3
        return batch._replace(lengths=jnp.asarray(lengths, jnp.int32))

    return data


TRAIN = with_lengths(TASK.stream(BATCH, seed=0), BATCH, TASK.length)
EVAL = with_lengths(TASK.stream(BATCH, seed=1), BATCH, TASK.length)
PROFILE = TASK.sample(jax.random.key(9), 4)


def leaves64(tree) -> list[np.ndarray]:
    return [np.asarray(x, np.float64) for x in jax.tree.leaves(tree)]


def max_diff(a, b) -> float:
    return max(float(np.max(np.abs(x - y))) if x.size else 0.0 for x, y in zip(leaves64(a), leaves64(b)))


def run_fit(directory=None, steps=12, mesh=None, *, train_data=TRAIN, eval_data=EVAL, **kwargs):
    return fit(
        MODEL, TASK.loss, OPTIMIZER, train_data, steps=steps, seed=0, clip_norm=0.5,
        eval_data=eval_data, eval_every=4, eval_batches=2, checkpoint_dir=directory, checkpoint_every=4,
        profile_batch=PROFILE, profile_every=4, progress=False, mesh=mesh, **kwargs,
    )


def history_diffs(a, b) -> dict[str, float]:
    out = {}
    for key in ("loss", "grad_norm", "update_ratio", "eval_loss"):
        out[key] = float(np.max(np.abs(np.asarray(a.history[key]) - np.asarray(b.history[key]))))
    out["profile"] = float(np.max(np.abs(np.asarray(a.history["profile"]) - np.asarray(b.history["profile"]))))
    out["layer_grad_norms"] = max(
        float(np.max(np.abs(np.asarray(a.history["layer_grad_norms"][n]) - np.asarray(b.history["layer_grad_norms"][n]))))
        for n in a.history["layer_grad_norms"]
    )
    out["params"] = max_diff(a.params, b.params)
    out["opt_state"] = max_diff(a.state.opt_state, b.state.opt_state)
    return out


def check_sharding(mesh) -> dict:
    batch = TRAIN(0)
    sharded = shard_batch(batch, mesh)
    out = {"spec": str(sharded.xs.sharding.spec)}
    rows_ok = True
    for name in ("xs", "targets", "lengths"):
        arr = getattr(sharded, name)
        shards = sorted(arr.addressable_shards, key=lambda s: s.index[0].start)
        out[f"{name}_shards"] = [list(s.data.shape) for s in shards]
        out[f"{name}_devices"] = sorted(s.device.id for s in shards)
        full = np.asarray(getattr(batch, name))
        for s in shards:  # each device holds exactly its contiguous rows of the global batch
            rows_ok &= bool(np.array_equal(np.asarray(s.data), full[s.index]))
            rows_ok &= s.data.devices() == {s.device}
    out["rows_match"] = rows_ok
    two = data_mesh(jax.devices()[:2])
    out["two_device_shards"] = [list(s.data.shape) for s in shard_batch(batch, two).xs.addressable_shards]
    return out


def check_step(mesh) -> dict:
    """One sharded step (no dropout key) against the gradient averaged over per-shard gradients."""
    params = MODEL.init(jax.random.key(3), TASK.input_size)
    batch = TRAIN(1)
    trainer = make_train_step(MODEL, TASK.loss, OPTIMIZER, clip_norm=0.5, mesh=mesh)
    state = trainer.init(params)
    new_state, metrics = trainer.step(state, batch)

    def loss(p, b):
        return TASK.loss(MODEL.apply(p, b.xs, lengths=b.lengths)[0], b)

    shard_rows = BATCH // len(mesh.devices.flat)
    value_and_grad = jax.jit(jax.value_and_grad(loss))
    per_shard = [
        value_and_grad(params, jax.tree.map(lambda x, i=i: x[i * shard_rows:(i + 1) * shard_rows], batch))
        for i in range(len(mesh.devices.flat))
    ]
    # Equal shards and a mean loss: the global loss and gradient are the means of the per-shard ones.
    ref_loss = float(np.mean([float(v) for v, _ in per_shard]))
    grads = [leaves64(g) for _, g in per_shard]
    mean_grad = [np.mean(np.stack(gs), axis=0) for gs in zip(*grads)]
    ref_norm = float(np.sqrt(sum(float((g**2).sum()) for g in mean_grad)))
    shard_norms = [float(np.sqrt(sum(float((x**2).sum()) for x in g))) for g in grads]
    single = make_train_step(MODEL, TASK.loss, OPTIMIZER, clip_norm=0.5)
    single_state, single_metrics = single.step(single.init(params), batch)
    hlo = trainer.step.lower(state, batch).compile().as_text()
    return {
        "loss": float(metrics["loss"]),
        "grad_norm": float(metrics["grad_norm"]),
        "ref_loss": ref_loss,
        "ref_grad_norm": ref_norm,
        "per_shard_grad_norms": shard_norms,
        "layer_grad_norms": {n: float(v) for n, v in metrics["layer_grad_norms"].items()},
        "single_layer_grad_norms": {n: float(v) for n, v in single_metrics["layer_grad_norms"].items()},
        "single_update_ratio": float(single_metrics["update_ratio"]),
        "update_ratio": float(metrics["update_ratio"]),
        "params_vs_single": max_diff(new_state.params, single_state.params),
        "all_reduce_ops": hlo.count("all-reduce("),
        "state_replicated": all(x.sharding.is_fully_replicated and len(x.sharding.device_set) == 4 for x in jax.tree.leaves(new_state)),
        "metrics_replicated": all(x.sharding.is_fully_replicated for x in jax.tree.leaves(metrics)),
    }


def check_fit_and_resume(mesh, root: Path) -> dict:
    single = run_fit(root / "single")
    sharded = run_fit(root / "sharded", mesh=mesh)
    out = {
        "single_loss": single.history["loss"],
        "sharded_loss": sharded.history["loss"],
        "clipped_equal": single.history["clipped"] == sharded.history["clipped"],
        "clipped_count": int(sum(single.history["clipped"])),
        "diffs": history_diffs(sharded, single),
        "params_replicated": all(x.sharding.is_fully_replicated and len(x.sharding.device_set) == 4 for x in jax.tree.leaves(sharded.params)),
    }

    def interrupt_at_6(step, metrics):
        if step == 6:
            raise KeyboardInterrupt

    try:
        run_fit(root / "interrupted", mesh=mesh, callback=interrupt_at_6)
    except KeyboardInterrupt:
        pass
    out["interrupted_checkpoints"] = [s for s, _ in list_checkpoints(root / "interrupted")]
    resumed = run_fit(root / "interrupted", mesh=mesh)
    out["resumed_vs_uninterrupted"] = history_diffs(resumed, sharded)
    out["resumed_steps"] = resumed.history["step"]

    # A single-device run interrupted at step 6 and resumed on the mesh: checkpoints hold no device layout.
    try:
        run_fit(root / "moved", callback=interrupt_at_6)
    except KeyboardInterrupt:
        pass
    moved = run_fit(root / "moved", mesh=mesh)
    out["moved_vs_single"] = history_diffs(moved, single)
    return out


def check_errors(mesh) -> dict:
    out = {}
    odd = with_lengths(TASK.stream(6, seed=0), 6, TASK.length)
    for arg in ("train_data", "eval_data"):
        try:
            run_fit(steps=4, mesh=mesh, **{arg: odd})
        except ValueError as err:
            out[arg] = str(err)
    try:
        run_fit(steps=2, mesh=jax.devices())
    except TypeError as err:
        out["mesh"] = str(err)

    def poisoned(step):
        batch = TRAIN(step)
        return batch._replace(xs=batch.xs.at[1, 0, 0].set(jnp.nan)) if step == 2 else batch

    try:
        run_fit(steps=5, mesh=mesh, train_data=poisoned)
    except NonFiniteError as err:
        out["nonfinite_step"] = err.step
        out["nonfinite_params"] = sorted(err.params)
    return out


def main(path: str) -> None:
    mesh = data_mesh()
    result = {"device_count": jax.device_count(), "mesh_shape": dict(mesh.shape)}
    result["sharding"] = check_sharding(mesh)
    result["step"] = check_step(mesh)
    with tempfile.TemporaryDirectory() as root:
        result["fit"] = check_fit_and_resume(mesh, Path(root))
    result["errors"] = check_errors(mesh)
    Path(path).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
