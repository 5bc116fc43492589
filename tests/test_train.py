"""The jitted train step against Adam written out (Kingma & Ba 2015), and `fit`: exact resume after an
interrupt or a crash, the non-finite stop, atomic checkpoints."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxrnn
from jaxrnn.models import SequenceRegressor
from jaxrnn.tasks import AddingProblem
from jaxrnn.train import NonFiniteError, fit, latest_checkpoint, list_checkpoints, load_checkpoint, make_train_step, save_checkpoint

TASK = AddingProblem(8)
MODEL = SequenceRegressor(jaxrnn.RNN(jaxrnn.LSTM(4)), output_size=1)
OPTIMIZER = optax.adam(1e-2)


def _np(tree):
    return [np.asarray(x, np.float64) for x in jax.tree.leaves(tree)]


def test_train_step_equals_clipped_adam_written_out():
    params = MODEL.init(jax.random.key(0), TASK.input_size)
    batch = TASK.sample(jax.random.key(1), 8)
    lr, clip, b1, b2, eps = 1e-2, 0.05, 0.9, 0.999, 1e-8
    trainer = make_train_step(MODEL, TASK.loss, optax.adam(lr, b1=b1, b2=b2, eps=eps), clip_norm=clip)
    state, metrics = trainer.step(trainer.init(params), batch)

    def loss(p):
        return jnp.mean((MODEL.apply(p, batch.xs)[0] - batch.targets) ** 2)

    value, grads = jax.value_and_grad(loss)(params)
    g = _np(grads)
    norm = np.sqrt(sum((x**2).sum() for x in g))
    g = [x * min(1.0, clip / norm) for x in g]
    # Adam, first step: m = (1-b1) g, v = (1-b2) g^2, bias-corrected m_hat = g, v_hat = g^2.
    m_hat = [(1 - b1) * x / (1 - b1) for x in g]
    v_hat = [(1 - b2) * x**2 / (1 - b2) for x in g]
    updates = [-lr * m / (np.sqrt(v) + eps) for m, v in zip(m_hat, v_hat)]
    expected = [p + u for p, u in zip(_np(params), updates)]
    for got, want in zip(_np(state.params), expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    assert int(state.step) == 1
    assert float(metrics["loss"]) == pytest.approx(float(value), rel=1e-6)
    assert float(metrics["grad_norm"]) == pytest.approx(norm, rel=1e-5)
    assert bool(metrics["clipped"]) == (norm > clip)
    upd = np.sqrt(sum((u**2).sum() for u in updates))
    assert float(metrics["update_ratio"]) == pytest.approx(upd / np.sqrt(sum((p**2).sum() for p in _np(params))), rel=1e-4)
    assert set(metrics["layer_grad_norms"]) == {"layer", "head"}
    assert not bool(metrics["nonfinite"])


def _fit(directory, steps, **kwargs):
    return fit(
        MODEL,
        TASK.loss,
        OPTIMIZER,
        TASK.stream(8, seed=0),
        steps=steps,
        seed=0,
        clip_norm=1.0,
        eval_data=TASK.stream(8, seed=1),
        eval_every=4,
        eval_batches=1,
        checkpoint_dir=directory,
        checkpoint_every=4,
        profile_batch=TASK.sample(jax.random.key(9), 4),
        profile_every=4,
        progress=False,
        **kwargs,
    )


def _same_run(a, b):
    """Bit for bit: the same compiled step applied to the same batches in the same order."""
    for x, y in zip(jax.tree.leaves(a.state), jax.tree.leaves(b.state)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    for key in ("step", "loss", "grad_norm", "clipped", "eval_step", "eval_loss", "profile_step", "profile"):
        np.testing.assert_array_equal(np.asarray(a.history[key]), np.asarray(b.history[key]))


def test_resume_after_interrupt_and_after_crash_equals_uninterrupted_run(tmp_path):
    full = _fit(tmp_path / "full", 12)
    assert full.history["step"] == list(range(1, 13))
    assert full.history["eval_step"] == [4, 8, 12] and full.history["profile_step"] == [0, 4, 8, 12]

    def interrupt_at_6(step, metrics):
        if step == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path / "interrupted", 12, callback=interrupt_at_6)
    assert [s for s, _ in list_checkpoints(tmp_path / "interrupted")] == [4, 6]  # saved on the interrupt
    _same_run(_fit(tmp_path / "interrupted", 12), full)

    # A crash (no chance to save) after step 6: only the periodic checkpoint of step 4 survives.
    _fit(tmp_path / "crashed", 6)
    os.remove(tmp_path / "crashed" / "ckpt_000000006.msgpack")
    assert latest_checkpoint(tmp_path / "crashed").name == "ckpt_000000004.msgpack"
    _same_run(_fit(tmp_path / "crashed", 12), full)


def test_nonfinite_gradient_stops_with_report_and_keeps_last_good_checkpoint(tmp_path):
    clean = TASK.stream(8, seed=0)

    def poisoned(step):
        batch = clean(step)
        return batch._replace(xs=batch.xs.at[0, 0, 0].set(jnp.nan)) if step == 5 else batch

    with pytest.raises(NonFiniteError) as info:
        fit(MODEL, TASK.loss, OPTIMIZER, poisoned, steps=10, checkpoint_dir=tmp_path, checkpoint_every=2, progress=False)
    err = info.value
    assert err.step == 6 and np.isnan(err.loss)
    assert set(err.params) == {"layer/w_ih", "layer/w_hh", "layer/b", "head/w", "head/b"}
    assert "step 6" in str(err) and "layer/w_hh" in str(err)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [2, 4]  # nothing written at or after the bad step
    assert err.checkpoint == tmp_path / "ckpt_000000004.msgpack"
    assert int(err.state.step) == 5 and all(np.isfinite(x).all() for x in _np(err.state.params))


def test_checkpoint_writes_are_atomic_and_pruned(tmp_path, monkeypatch):
    tree = {"a": jnp.arange(3.0), "b": {"c": jnp.ones((2, 2), jnp.int32)}}
    for step in (1, 2, 3, 4):
        save_checkpoint(tmp_path, step, tree, keep=2)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [3, 4]
    restored = load_checkpoint(latest_checkpoint(tmp_path), tree)
    np.testing.assert_array_equal(restored["a"], tree["a"])
    assert restored["b"]["c"].dtype == jnp.int32

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path, 5, {"a": jnp.zeros(3)}, keep=2)
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["ckpt_000000003.msgpack", "ckpt_000000004.msgpack"]  # no debris
    np.testing.assert_array_equal(load_checkpoint(latest_checkpoint(tmp_path))["a"], np.arange(3.0))


def test_fit_refuses_a_checkpoint_of_another_model_and_bad_arguments(tmp_path):
    fit(MODEL, TASK.loss, OPTIMIZER, TASK.stream(8, seed=0), steps=2, checkpoint_dir=tmp_path, progress=False)
    other = SequenceRegressor(jaxrnn.RNN(jaxrnn.LSTM(5)), output_size=1)
    with pytest.raises(ValueError, match="'checkpoint_dir'"):
        fit(other, TASK.loss, OPTIMIZER, TASK.stream(8, seed=0), steps=4, checkpoint_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="'steps'"):
        fit(MODEL, TASK.loss, OPTIMIZER, TASK.stream(8, seed=0), steps=0, progress=False)
    with pytest.raises(ValueError, match="'profile_batch'"):
        fit(MODEL, TASK.loss, OPTIMIZER, TASK.stream(8, seed=0), steps=2, profile_every=1, progress=False)
    with pytest.raises(TypeError, match="'train_data'"):
        fit(MODEL, TASK.loss, OPTIMIZER, None, steps=2, progress=False)
    with pytest.raises(TypeError, match="'loss_fn'"):
        make_train_step(MODEL, None, OPTIMIZER)
