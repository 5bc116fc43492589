"""Parameter-gradient norms and the `monitored` optax wrapper, against numpy float64 and plain optax."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxrnn.diagnostics import grad_stats, monitored, param_grad_norms, safe_log10_norm, safe_norm, tree_norm


def _tree(seed: int, scale: float = 1.0):
    rng = np.random.default_rng(seed)
    return {
        "layer": {
            "w_ih": jnp.asarray(rng.normal(size=(3, 8)) * scale, jnp.float32),
            "w_hh": jnp.asarray(rng.normal(size=(2, 8)) * scale, jnp.float32),
            "b": jnp.asarray(rng.normal(size=(8,)) * scale, jnp.float32),
        },
        "head": {"w": jnp.asarray(rng.normal(size=(2, 1)) * scale, jnp.float32), "b": jnp.zeros((1,), jnp.float32)},
    }


def _np_norm(*arrays):
    return float(np.sqrt(sum(np.sum(np.asarray(a, np.float64) ** 2) for a in arrays)))


def test_param_grad_norms_match_numpy_and_survive_underflow():
    for scale in (1.0, 1e-25):  # 1e-25: the squares underflow float32 (1e-50 < 1e-38)
        grads, params, updates = _tree(0, scale), _tree(1), _tree(2, 1e-3)
        out = jax.jit(lambda g, p, u: param_grad_norms(g, params=p, updates=u))(grads, params, updates)
        L, H = grads["layer"], grads["head"]
        assert set(out.per_param) == {"layer/w_ih", "layer/w_hh", "layer/b", "head/w", "head/b"}
        for name in ("w_ih", "w_hh", "b"):
            assert float(out.per_param[f"layer/{name}"]) == pytest.approx(_np_norm(L[name]), rel=1e-5)
        assert float(out.per_layer["layer"]) == pytest.approx(_np_norm(*L.values()), rel=1e-5)
        assert float(out.per_layer["head"]) == pytest.approx(_np_norm(*H.values()), rel=1e-5)
        assert float(out.global_norm) == pytest.approx(_np_norm(*jax.tree.leaves(grads)), rel=1e-5)
        assert float(out.update_ratio["layer"]) == pytest.approx(
            _np_norm(*updates["layer"].values()) / _np_norm(*params["layer"].values()), rel=1e-5
        )
        assert float(out.global_update_ratio) == pytest.approx(
            _np_norm(*jax.tree.leaves(updates)) / _np_norm(*jax.tree.leaves(params)), rel=1e-5
        )
    # What optax's own norm gives at that scale: 0.
    assert float(optax.tree.norm(_tree(0, 1e-25))) == 0.0
    assert float(tree_norm(_tree(0, 1e-25))) == pytest.approx(_np_norm(*jax.tree.leaves(_tree(0, 1e-25))), rel=1e-5)


def test_safe_norms_edge_cases():
    x = jnp.asarray([3e-30, 4e-30], jnp.float32)
    assert float(safe_norm(x)) == pytest.approx(5e-30, rel=1e-6)
    assert float(safe_log10_norm(x)) == pytest.approx(np.log10(5e-30), abs=1e-5)
    big = jnp.asarray([3e30, 4e30], jnp.float32)  # squares overflow float32
    assert float(safe_norm(big)) == pytest.approx(5e30, rel=1e-6)
    assert float(safe_norm(jnp.zeros(3))) == 0.0 and float(safe_log10_norm(jnp.zeros(3))) == -np.inf
    assert np.isinf(float(safe_norm(jnp.asarray([1.0, np.inf]))))
    assert np.isnan(float(safe_norm(jnp.asarray([1.0, np.nan]))))
    rows = jnp.asarray(np.random.default_rng(0).normal(size=(4, 5)), jnp.float32)
    np.testing.assert_allclose(safe_norm(rows, axis=1), np.linalg.norm(np.asarray(rows, np.float64), axis=1), rtol=1e-6)


def _grads_fn(params, batch):
    def loss(p):
        hidden = jnp.tanh(batch @ p["layer"]["w_ih"]) @ p["layer"]["w_hh"].T
        return jnp.mean((hidden @ p["head"]["w"] + p["head"]["b"] - 1.0) ** 2)

    return jax.grad(loss)(params)


def test_monitored_inside_jit_equals_optax_clip_then_adam_and_records_stats():
    params = _tree(3)
    batch = jnp.asarray(np.random.default_rng(4).normal(size=(16, 3)) * 3, jnp.float32)
    tx = monitored(optax.adam(1e-2), clip_norm=0.5)
    ref_tx = optax.chain(optax.clip_by_global_norm(0.5), optax.adam(1e-2))

    @jax.jit
    def step(p, s, q, r):
        g = _grads_fn(p, batch)
        u, s = tx.update(g, s, p)
        g_ref = _grads_fn(q, batch)
        u_ref, r = ref_tx.update(g_ref, r, q)
        return optax.apply_updates(p, u), s, optax.apply_updates(q, u_ref), r, g, u

    p, s, q, r = params, tx.init(params), params, ref_tx.init(params)
    for _ in range(3):
        p_before = p
        p, s, q, r, g, u = step(p, s, q, r)
        stats = grad_stats(s)
        raw = _np_norm(*jax.tree.leaves(g))
        assert float(stats.global_norm) == pytest.approx(raw, rel=1e-5)
        assert bool(stats.clipped) == (raw > 0.5)
        assert not bool(stats.nonfinite) and not any(bool(v) for v in stats.nonfinite_params.values())
        assert float(stats.layer_norms["head"]) == pytest.approx(_np_norm(*g["head"].values()), rel=1e-5)
        assert float(stats.update_ratio) == pytest.approx(
            _np_norm(*jax.tree.leaves(u)) / _np_norm(*jax.tree.leaves(p_before)), rel=1e-5
        )
        assert float(stats.layer_update_ratios["layer"]) == pytest.approx(
            _np_norm(*u["layer"].values()) / _np_norm(*p_before["layer"].values()), rel=1e-5
        )
    assert bool(grad_stats(s).clipped)  # the gradients here are large: clipping fired
    for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(q)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_monitored_flags_nonfinite_and_thresholds_and_is_found_when_nested():
    params = _tree(5)
    grads = jax.tree.map(jnp.ones_like, params)
    grads["head"]["w"] = grads["head"]["w"].at[0, 0].set(jnp.nan)
    tx = optax.chain(optax.add_decayed_weights(1e-4), monitored(optax.sgd(0.1), exploding_above=2.0))
    _, state = jax.jit(tx.update)(grads, tx.init(params), params)
    stats = grad_stats(state)
    assert bool(stats.nonfinite)
    assert {k for k, v in stats.nonfinite_params.items() if bool(v)} == {"head/w"}

    ok = jax.tree.map(lambda a: jnp.full_like(a, 1e-9), params)
    tx = monitored(optax.sgd(0.1), vanishing_below=1e-6, exploding_above=2.0)
    _, state = tx.update(ok, tx.init(params), params)
    assert bool(state.stats.vanishing) and not bool(state.stats.exploding) and not bool(state.stats.clipped)
    big = jax.tree.map(lambda a: jnp.full_like(a, 10.0), params)
    _, state = tx.update(big, tx.init(params), params)
    assert bool(state.stats.exploding) and not bool(state.stats.vanishing)
    _, state = tx.update(big, tx.init(params))  # no params: ratios are nan, the rest still recorded
    assert np.isnan(float(state.stats.update_ratio)) and float(state.stats.global_norm) > 0


def test_monitored_forwards_extra_args_to_the_wrapped_optimizer():
    params = _tree(6)
    grads = jax.tree.map(jnp.ones_like, params)
    inner = optax.chain(optax.sgd(0.1), optax.contrib.reduce_on_plateau(patience=1, factor=0.5))
    tx = monitored(inner)
    state = tx.init(params)
    steps = []
    for _ in range(3):  # the loss (value=) stops improving after the first call: each later one halves the scale
        updates, state = tx.update(grads, state, params, value=jnp.asarray(1.0))
        steps.append(float(updates["head"]["b"][0]))
    np.testing.assert_allclose(steps, [-0.1, -0.05, -0.025], rtol=1e-6)
    assert float(state.stats.global_norm) == pytest.approx(np.sqrt(sum(x.size for x in jax.tree.leaves(params))), rel=1e-6)


def test_errors_name_the_argument():
    with pytest.raises(TypeError, match="'optimizer'"):
        monitored("adam")
    with pytest.raises(ValueError, match="'clip_norm'"):
        monitored(optax.adam(1e-3), clip_norm=-1.0)
    with pytest.raises(ValueError, match="'grads'"):
        param_grad_norms({})
    with pytest.raises(ValueError, match="'params' and 'updates'"):
        param_grad_norms(_tree(0), params=_tree(1))
    with pytest.raises(ValueError, match="'updates'"):
        param_grad_norms(_tree(0), params=_tree(1), updates={"x": jnp.ones(2)})
    with pytest.raises(ValueError, match="'opt_state'"):
        grad_stats(optax.adam(1e-3).init(_tree(0)))
