"""jaxrnn.nnx: the NNX modules equal the functional form (init, outputs, gradients, optimizer steps)
and Flax's own NNX recurrent modules when given the same weights."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jaxrnn
import jaxrnn.nnx as rnx
from jaxrnn import models

B, T, I, H = 3, 6, 4, 5


def _xs(seed=0):
    return jnp.asarray(np.random.default_rng(seed).standard_normal((B, T, I)), jnp.float32)


LENGTHS = jnp.array([6, 2, 4])


def _grads_as_functional(module, loss):
    """nnx.grad of `loss(module)`, rearranged into the functional parameter dict."""
    grads = nnx.grad(loss)(module)
    shadow = nnx.clone(module)
    nnx.update(shadow, grads)
    return shadow.functional_params()


def _assert_trees_close(a, b, **tol):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), **tol)


def test_init_and_outputs_equal_the_functional_layer():
    module = rnx.LSTM(I, H, rngs=nnx.Rngs(0), forget_bias=0.5)
    layer = jaxrnn.RNN(jaxrnn.LSTM(H, forget_bias=0.5))
    params = layer.init(nnx.Rngs(0).params(), I)  # the key the module drew
    _assert_trees_close(module.functional_params(), params, rtol=0, atol=0)
    ys, carry = module(_xs(), lengths=LENGTHS)
    ys_f, carry_f = layer.apply(params, _xs(), lengths=LENGTHS)
    _assert_trees_close((ys, carry), (ys_f, carry_f), rtol=0, atol=0)
    # streaming through the module's step gives the same outputs
    c = module.initial_carry((B,))
    step = nnx.jit(lambda m, c, x: m.step(c, x))
    full = np.asarray(layer.apply(params, _xs())[0])
    for t in range(T):
        c, y = step(module, c, _xs()[:, t])
        np.testing.assert_allclose(np.asarray(y), full[:, t], atol=1e-6)


def _deep(rngs, dropout=0.0, deterministic=False):
    bi = rnx.Bidirectional(rnx.LSTM(I, H, rngs=rngs), rnx.GRU(I, H, rngs=rngs))
    return rnx.Stacked([bi, rnx.SimpleRNN(2 * H, H, rngs=rngs, activation="relu")], dropout=dropout, rngs=rngs,
                       deterministic=deterministic)


def test_gradients_equal_the_functional_form_under_nnx_jit():
    module = _deep(nnx.Rngs(1))
    layer, params = module.layer, module.functional_params()
    xs = _xs(2)

    def f_loss(p):
        ys, _ = layer.apply(p, xs, lengths=LENGTHS)
        return jnp.sum(jnp.sin(ys))

    got = nnx.jit(lambda m: _grads_as_functional(m, lambda mm: jnp.sum(jnp.sin(mm(xs, lengths=LENGTHS)[0]))))(module)
    _assert_trees_close(got, jax.jit(jax.grad(f_loss))(params), rtol=1e-6, atol=1e-7)
    assert set(got) == {"layer_0", "layer_1"} and set(got["layer_0"]) == {"forward", "backward"}


def test_optimizer_steps_equal_functional_optax_steps():
    module = rnx.GRU(I, H, rngs=nnx.Rngs(3))
    layer, params = module.layer, module.functional_params()
    xs, target = _xs(4), jnp.ones((B, T, H)) * 0.3
    tx = optax.adam(0.05)

    optimizer = nnx.Optimizer(module, tx, wrt=nnx.Param)

    @nnx.jit
    def nnx_step(model, optimizer):
        loss, grads = nnx.value_and_grad(lambda m: jnp.mean((m(xs, lengths=LENGTHS)[0] - target) ** 2))(model)
        optimizer.update(model, grads)
        return loss

    def f_loss(p):
        return jnp.mean((layer.apply(p, xs, lengths=LENGTHS)[0] - target) ** 2)

    f_value_and_grad = jax.jit(jax.value_and_grad(f_loss))
    state = tx.init(params)
    for _ in range(3):
        loss = nnx_step(module, optimizer)
        f_val, g = f_value_and_grad(params)
        updates, state = tx.update(g, state, params)
        params = optax.apply_updates(params, updates)
        np.testing.assert_allclose(float(loss), float(f_val), rtol=1e-6)
    _assert_trees_close(module.functional_params(), params, rtol=1e-5, atol=1e-6)


def test_dropout_follows_eval_train_and_explicit_keys():
    module = _deep(nnx.Rngs(params=0, dropout=1), dropout=0.5)
    xs = _xs(5)
    a, _ = module(xs)
    b, _ = module(xs)
    assert float(jnp.abs(a - b).max()) > 1e-3  # a fresh dropout mask per call
    key = jax.random.key(9)
    with_key, _ = module(xs, key=key)
    np.testing.assert_array_equal(with_key, module.layer.apply(module.functional_params(), xs, key=key)[0])
    module.eval()
    c, _ = module(xs)
    np.testing.assert_array_equal(c, module.layer.apply(module.functional_params(), xs)[0])
    module.train()
    assert module.deterministic is False


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_equals_flax_nnx_rnn_with_the_same_weights(kind):
    """Flax's own nnx.RNN over nnx.LSTMCell / nnx.GRUCell, weights copied across, padded batch."""
    rngs = nnx.Rngs(7)
    xs = _xs(6)
    if kind == "lstm":
        cell = nnx.LSTMCell(I, H, rngs=rngs)
        gates = ("i", "f", "g", "o")
        w_ih = jnp.concatenate([getattr(cell, "i" + ("f_" if g == "f" else g)).kernel[...] for g in gates], -1)
        w_hh = jnp.concatenate([getattr(cell, "h" + g).kernel[...] for g in gates], -1)
        b = jnp.concatenate([getattr(cell, "h" + g).bias[...] for g in gates], -1)
        params = {"w_ih": w_ih, "w_hh": w_hh, "b": b}
        layer = jaxrnn.RNN(jaxrnn.LSTM(H))
    else:
        cell = nnx.GRUCell(I, H, rngs=rngs)
        # nnx.GRUCell has no recurrent candidate bias b_hn (flax#5594): zero ours
        params = {"w_ih": cell.dense_i.kernel[...], "w_hh": cell.dense_h.kernel[...], "b": cell.dense_i.bias[...],
                  "b_hn": jnp.zeros((H,))}
        layer = jaxrnn.RNN(jaxrnn.GRU(H))
    flax_ys = nnx.RNN(cell)(xs, seq_lengths=LENGTHS)
    ys, _ = rnx.Layer(layer, params=params)(xs, lengths=LENGTHS)
    valid = (jnp.arange(T) < LENGTHS[:, None])[..., None]
    np.testing.assert_allclose(np.asarray(jnp.where(valid, ys, 0)), np.asarray(jnp.where(valid, flax_ys, 0)), atol=2e-6)


def test_wrapping_a_model_inside_a_user_module():
    class Net(nnx.Module):
        def __init__(self, rngs):
            clf = models.SequenceClassifier(jaxrnn.RNN(jaxrnn.GRU(H)), num_classes=3, pool="mean")
            self.rnn = rnx.Layer(clf, I, rngs=rngs)
            self.scale = nnx.Param(jnp.array(2.0))

        def __call__(self, xs, lengths):
            logits, _ = self.rnn(xs, lengths=lengths)
            return self.scale[...] * logits

    net = Net(nnx.Rngs(8))
    xs = _xs(7)
    want = 2.0 * net.rnn.layer.apply(net.rnn.functional_params(), xs, lengths=LENGTHS)[0]
    np.testing.assert_allclose(np.asarray(nnx.jit(lambda n: n(xs, LENGTHS))(net)), np.asarray(want), rtol=1e-6)
    assert len(jax.tree.leaves(nnx.state(net, nnx.Param))) == 3 + 1 + 2 + 1  # GRU w_ih w_hh b b_hn, head w b, scale


def test_nnx_errors():
    with pytest.raises(ValueError, match="needs argument 'rngs' with a 'dropout'"):
        rnx.Stacked([rnx.GRU(I, H, rngs=nnx.Rngs(0))], dropout=0.2)
    with pytest.raises(TypeError, match="'backward' must be a jaxrnn.nnx module"):
        rnx.Bidirectional(rnx.GRU(I, H, rngs=nnx.Rngs(0)), jaxrnn.RNN(jaxrnn.GRU(H)))
    with pytest.raises(ValueError, match="argument 'rngs' is needed"):
        rnx.Layer(jaxrnn.RNN(jaxrnn.GRU(H)), I)
    with pytest.raises(ValueError, match="'in_features' must be a positive int"):
        rnx.LSTM(0, H, rngs=nnx.Rngs(0))
    assert jaxrnn.nnx is rnx
