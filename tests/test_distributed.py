"""Data-parallel training (`mesh=`): a run sharded over 4 simulated CPU devices equals a single-device
run to float rounding, the batch really is split by rows, the diagnostics are global, checkpoints
resume sharded (and across layouts); and a two-process run through `jax.distributed.initialize`.

`--xla_force_host_platform_device_count` must be set before JAX starts, so the multi-device runs
happen in subprocesses (tests/distributed_check.py, tests/distributed_multiprocess.py) that write what
they measured as JSON; this process keeps its single default device. Measured (4 devices, T=8, batch
8, a 2-layer LSTM/GRU stack with dropout, 12 clipped Adam steps): max |difference| to the single-device
run 6e-8 in the losses, 2.4e-7 in the gradient norms, 1.2e-7 in the parameters; resumed sharded run
identical to the uninterrupted one (difference 0.0). Two processes x 2 devices: 1.2e-7 in the losses,
6e-8 in the parameters.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import optax
import pytest

import jaxrnn
from jaxrnn.models import SequenceRegressor
from jaxrnn.tasks import AddingProblem
from jaxrnn.train import data_mesh, fit, make_train_step, replicate, shard_batch

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"


def _env(devices: int) -> dict[str, str]:
    env = dict(os.environ)
    flags = env.get("XLA_FLAGS", "")
    env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={devices}".strip()
    env["JAX_PLATFORMS"] = "cpu"  # the simulated devices are CPU devices, also on a GPU machine
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


@pytest.fixture(scope="module")
def four(tmp_path_factory):
    out = tmp_path_factory.mktemp("dp") / "result.json"
    proc = subprocess.run(
        [sys.executable, str(TESTS / "distributed_check.py"), str(out)],
        check=False, env=_env(4), cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return json.loads(out.read_text())


def test_four_simulated_devices_in_the_subprocess_one_here(four):
    assert four["device_count"] == 4 and four["mesh_shape"] == {"data": 4}
    assert jax.device_count() == 1  # this process is untouched


def test_batch_is_split_by_rows_across_the_devices(four):
    s = four["sharding"]
    assert s["spec"] == "P('data',)"
    assert s["xs_shards"] == [[2, 8, 2]] * 4 and s["targets_shards"] == [[2, 1]] * 4 and s["lengths_shards"] == [[2]] * 4
    assert s["xs_devices"] == s["targets_devices"] == s["lengths_devices"] == [0, 1, 2, 3]
    assert s["rows_match"]  # device i holds rows 2i, 2i+1 of the global batch, nothing else
    assert s["two_device_shards"] == [[4, 8, 2]] * 2  # a mesh over two of the four devices


def test_sharded_step_reports_the_global_loss_and_gradient_norm(four):
    st = four["step"]
    # The reference: per-shard losses and gradients computed one shard at a time, averaged (equal shards).
    assert st["loss"] == pytest.approx(st["ref_loss"], rel=1e-6)
    assert st["grad_norm"] == pytest.approx(st["ref_grad_norm"], rel=1e-6)
    # Not a per-shard number: the norm of the mean gradient differs from every shard's gradient norm.
    assert all(abs(st["grad_norm"] - n) > 0.5 for n in st["per_shard_grad_norms"])
    assert st["layer_grad_norms"].keys() == st["single_layer_grad_norms"].keys()
    for name, value in st["layer_grad_norms"].items():
        assert value == pytest.approx(st["single_layer_grad_norms"][name], rel=1e-6)
    assert st["update_ratio"] == pytest.approx(st["single_update_ratio"], rel=1e-6)
    assert st["params_vs_single"] < 1e-6
    assert st["all_reduce_ops"] >= 1  # XLA inserted the gradient all-reduce
    assert st["state_replicated"] and st["metrics_replicated"]


# Max abs difference between a 4-device run and the single-device run, per history entry: float32
# round-off from a different reduction order (gradient norms and profiles are sums of squares).
SHARDED_VS_SINGLE_TOLERANCES = {"loss": 1e-6, "grad_norm": 1e-5, "update_ratio": 1e-7, "eval_loss": 1e-6,
                                "profile": 1e-4, "layer_grad_norms": 1e-5, "params": 1e-6, "opt_state": 1e-6}


def test_sharded_fit_equals_single_device_fit(four):
    f = four["fit"]
    np.testing.assert_allclose(f["sharded_loss"], f["single_loss"], rtol=1e-6, atol=1e-7)
    assert f["clipped_equal"]
    for key, tol in SHARDED_VS_SINGLE_TOLERANCES.items():
        assert f["diffs"][key] <= tol, (key, f["diffs"][key])
    assert f["params_replicated"]


def test_sharded_checkpoint_resume(four):
    f = four["fit"]
    assert f["interrupted_checkpoints"] == [4, 6]  # the periodic one and the one saved on the interrupt
    assert f["resumed_steps"] == list(range(1, 13))
    # The same compiled sharded step on the same batches: identical to the last bit.
    assert all(v == 0.0 for v in f["resumed_vs_uninterrupted"].values()), f["resumed_vs_uninterrupted"]
    # A single-device checkpoint resumed on 4 devices continues the single-device run.
    for key, tol in SHARDED_VS_SINGLE_TOLERANCES.items():
        assert f["moved_vs_single"][key] <= tol, (key, f["moved_vs_single"][key])


def test_sharded_errors_and_nonfinite_stop(four):
    e = four["errors"]
    for arg in ("train_data", "eval_data"):
        assert f"fit: argument '{arg}'" in e[arg] and "batch size 6" in e[arg] and "4 devices" in e[arg], e[arg]
    assert "argument 'mesh'" in e["mesh"] and "list" in e["mesh"]
    assert e["nonfinite_step"] == 3
    assert "layer/layer_0/w_ih" in e["nonfinite_params"]


# ---- in this process (one device) ----


def test_data_mesh_and_shard_batch_argument_errors():
    mesh = data_mesh()
    assert mesh.axis_names == ("data",) and mesh.devices.size == jax.device_count()
    assert data_mesh(axis_name="batch").axis_names == ("batch",)
    device = jax.devices()[0]
    with pytest.raises(ValueError, match="'axis_name'"):
        data_mesh(axis_name="")
    with pytest.raises(TypeError, match="'devices'.*nothing"):
        data_mesh([])
    with pytest.raises(TypeError, match="'devices'.*str"):
        data_mesh(["cpu:0"])
    with pytest.raises(ValueError, match="'devices' must not repeat"):
        data_mesh([device, device])
    with pytest.raises(TypeError, match="'mesh'"):
        make_train_step(MODEL, TASK.loss, optax.sgd(0.1), mesh="data")
    with pytest.raises(TypeError, match="fit: argument 'mesh'"):
        fit(MODEL, TASK.loss, optax.sgd(0.1), TASK.stream(4, seed=0), steps=1, mesh=jax.devices(), progress=False)
    with pytest.raises(ValueError, match="same number of rows.*\\[3, 4\\]"):
        shard_batch({"a": np.zeros((4, 2)), "b": np.zeros((3,))}, mesh)
    with pytest.raises(ValueError, match="leading batch axis"):
        shard_batch({"a": np.zeros(())}, mesh)
    with pytest.raises(ValueError, match="holds no arrays"):
        shard_batch({}, mesh)


TASK = AddingProblem(6)
MODEL = SequenceRegressor(jaxrnn.RNN(jaxrnn.SimpleRNN(3)), output_size=1)


def test_one_device_mesh_step_equals_the_plain_step():
    """`mesh=` on one device is the plain step: same numbers, and host (numpy) batches are accepted."""
    params = MODEL.init(jax.random.key(0), TASK.input_size)
    batch = jax.tree.map(np.asarray, TASK.sample(jax.random.key(1), 4))
    plain = make_train_step(MODEL, TASK.loss, optax.adam(1e-2), clip_norm=1.0)
    sharded = make_train_step(MODEL, TASK.loss, optax.adam(1e-2), clip_norm=1.0, mesh=data_mesh())
    want, want_metrics = plain.step(plain.init(params), batch, jax.random.key(2))
    state = replicate(sharded.init(params), data_mesh())
    got, got_metrics = sharded.step(state, batch, key=jax.random.key(2))
    for x, y in zip(jax.tree.leaves((got, got_metrics)), jax.tree.leaves((want, want_metrics))):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6, atol=1e-7)
    assert float(sharded.evaluate(got.params, batch)) == pytest.approx(float(plain.evaluate(want.params, batch)), rel=1e-6)


# ---- two processes through jax.distributed (slow: two JAX processes compiling on a shared CPU) ----


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_through_jax_distributed(tmp_path):
    """Two processes x 2 CPU devices, Gloo collectives: each feeds only its rows; process 0 writes the
    checkpoints, both resume from them; losses and parameters equal the single-device run."""
    port, ckpt = _free_port(), tmp_path / "ckpt"
    outs = [tmp_path / f"process{i}.json" for i in range(2)]
    procs = [
        subprocess.Popen(
            [sys.executable, str(TESTS / "distributed_multiprocess.py"), str(i), "2", str(port), str(ckpt), str(outs[i])],
            env=_env(2), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for i in range(2)
    ]
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=480)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0, 0], "\n".join(log[-4000:] for log in logs)
    for i, out in enumerate(outs):
        r = json.loads(out.read_text())
        assert (r["process_index"], r["process_count"], r["device_count"], r["local_device_count"]) == (i, 2, 4, 2)
        assert r["global_shape"] == [8, 8, 2]
        assert r["local_shards"] == [[4 * i, 4 * i + 2], [4 * i + 2, 4 * i + 4]] and r["local_rows_match"]
        assert "'train_data'" in r["odd_error"] and "2 devices of the mesh on this process" in r["odd_error"]
        assert r["checkpoints_after_first"] == [4] and r["checkpoints_after_resume"] == [4, 8]
        assert r["resumed_steps"] == list(range(1, 9))
        np.testing.assert_allclose(r["sharded_loss"], r["single_loss"], rtol=1e-6, atol=1e-7)
        assert max(r["diffs"].values()) <= 1e-5, r["diffs"]
        assert r["params_global"]
