"""Every kind of bad input raises ValueError / TypeError naming the argument, expected and actual.

The errors come from Python before XLA sees anything, so they are the same under `jax.jit`.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jaxrnn

F, H = 3, 4
LSTM_LAYER = jaxrnn.RNN(jaxrnn.LSTM(H))
PARAMS = LSTM_LAYER.init(jax.random.key(0), F)
XS = jnp.ones((2, 5, F))


def _raises(exc, *fragments):
    """pytest.raises matching every fragment (regex-escaped) in the message, in order."""
    return pytest.raises(exc, match=".*".join(re.escape(f) for f in fragments))


@pytest.mark.parametrize("jit", [False, True])
class TestApplyArguments:
    def call(self, jit, params=PARAMS, xs=XS, layer=LSTM_LAYER, **kw):
        fn = layer.apply
        if jit:
            fn = jax.jit(fn)
        return fn(params, xs, **kw)

    def test_xs_rank(self, jit):
        with _raises(ValueError, "RNN.apply", "'xs'", "[*batch, T, F]", "got shape (3,)"):
            self.call(jit, xs=jnp.ones((F,)))

    def test_xs_feature_size(self, jit):
        with _raises(ValueError, "'xs'", "feature size 3", "got shape (2, 5, 7)"):
            self.call(jit, xs=jnp.ones((2, 5, 7)))

    def test_xs_dtype(self, jit):
        with _raises(TypeError, "'xs'", "floating dtype", "got int32"):
            self.call(jit, xs=jnp.ones((2, 5, F), jnp.int32))

    def test_lengths_shape(self, jit):
        with _raises(ValueError, "'lengths'", "batch shape of 'xs', (2,)", "got shape (3,)"):
            self.call(jit, lengths=jnp.array([1, 2, 3]))

    def test_lengths_dtype(self, jit):
        with _raises(TypeError, "'lengths'", "integer dtype", "got float32"):
            self.call(jit, lengths=jnp.array([1.0, 2.0]))

    def test_carry_structure(self, jit):
        with _raises(ValueError, "'carry'", "LSTMState", "got"):
            self.call(jit, carry=jnp.zeros((2, H)))

    def test_carry_shape(self, jit):
        bad = jaxrnn.LSTMState(h=jnp.zeros((2, H + 1)), c=jnp.zeros((2, H + 1)))
        with _raises(ValueError, "'carry'", "(2, 4)", "got", "(2, 5)"):
            self.call(jit, carry=bad)

    def test_carry_dtype(self, jit):
        bad = jaxrnn.LSTMState(h=jnp.zeros((2, H), jnp.bfloat16), c=jnp.zeros((2, H), jnp.bfloat16))
        with _raises(ValueError, "'carry'"):
            self.call(jit, carry=bad)

    def test_params_of_another_cell(self, jit):
        gru_params = jaxrnn.GRU(H).init(jax.random.key(0), F)
        with _raises(ValueError, "'params'", "got"):
            self.call(jit, params=gru_params)

    def test_params_not_a_dict(self, jit):
        with _raises(ValueError, "'params'", "LSTM.init", "got list"):
            self.call(jit, params=[1, 2])

    def test_probe_shape(self, jit):
        with _raises(ValueError, "'probe'", "(2, 5, 4)", "got (2, 5, 3)"):
            self.call(jit, probe=jnp.zeros((2, 5, 3)))

    def test_bidirectional_carry_arity(self, jit):
        layer = jaxrnn.Bidirectional(LSTM_LAYER)
        params = layer.init(jax.random.key(0), F)
        with _raises(ValueError, "Bidirectional.apply", "'carry'", "tuple of 2", "got a tuple of length 1"):
            self.call(jit, params=params, layer=layer, carry=(layer.forward.initial_carry(params["forward"], (2,)),))

    def test_stacked_params_keys(self, jit):
        layer = jaxrnn.Stacked([LSTM_LAYER, LSTM_LAYER])
        with _raises(ValueError, "Stacked.apply", "'params'", "['layer_0', 'layer_1']", "got"):
            self.call(jit, params={"layer_0": PARAMS}, layer=layer)


def test_lengths_out_of_range_when_concrete():
    with _raises(ValueError, "'lengths'", "[0, 5]", "got values in [-1, 6]"):
        LSTM_LAYER.apply(PARAMS, XS, lengths=np.array([6, -1]))


def test_stacked_key_type():
    layer = jaxrnn.Stacked([LSTM_LAYER, LSTM_LAYER], dropout=0.1)
    params = layer.init(jax.random.key(0), F)
    with _raises(TypeError, "'key'", "jax.random key", "got int"):
        layer.apply(params, XS, key=3)


@pytest.mark.parametrize(
    "make,exc,fragments",
    [
        (lambda: jaxrnn.LSTM(0), ValueError, ("LSTM", "'hidden_size'", "positive int", "got 0")),
        (lambda: jaxrnn.GRU(2.5), ValueError, ("'hidden_size'", "got 2.5")),
        (lambda: jaxrnn.SimpleRNN(3, activation="sigmoid"), ValueError, ("'activation'", "['tanh', 'relu']", "'sigmoid'")),
        (lambda: jaxrnn.LSTM(3, dtype=jnp.int32), TypeError, ("'dtype'", "floating", "int32")),
        (lambda: jaxrnn.LRU(3, dtype=jnp.bfloat16), ValueError, ("LRU", "'dtype'", "float32 or float64", "bfloat16")),
        (lambda: jaxrnn.LSTM(3, forget_bias="1"), TypeError, ("'forget_bias'", "float")),
        (lambda: jaxrnn.LSTM(3, use_bias=1), TypeError, ("'use_bias'", "bool", "got 1")),
        (lambda: jaxrnn.RNN("lstm"), TypeError, ("RNN", "'cell'", "got str")),
        (lambda: jaxrnn.RNN(jaxrnn.LSTM(3), unroll=0), ValueError, ("'unroll'", "got 0")),
        (lambda: jaxrnn.RNN(jaxrnn.LSTM(3), reverse="yes"), TypeError, ("'reverse'", "bool")),
        (lambda: jaxrnn.Bidirectional(LSTM_LAYER, merge="max"), ValueError, ("'merge'", "'concat'", "'max'")),
        (lambda: jaxrnn.Bidirectional(jaxrnn.RNN(jaxrnn.LSTM(3), reverse=True)), ValueError, ("'forward'", "reverse=False")),
        (
            lambda: jaxrnn.Bidirectional(LSTM_LAYER, jaxrnn.RNN(jaxrnn.LSTM(5)), merge="sum"),
            ValueError,
            ("equal output sizes", "4", "5"),
        ),
        (lambda: jaxrnn.Bidirectional(LSTM_LAYER, jaxrnn.RNN(jaxrnn.LSTM(4), time_major=True)), ValueError, ("time_major",)),
        (lambda: jaxrnn.Stacked([]), ValueError, ("'layers'", "at least one")),
        (lambda: jaxrnn.Stacked([LSTM_LAYER], dropout=1.0), ValueError, ("'dropout'", "[0, 1)", "1.0")),
        (lambda: jaxrnn.Stacked([LSTM_LAYER, "x"]), TypeError, ("'layers[1]'", "got str")),
        (
            lambda: jaxrnn.Stacked([LSTM_LAYER, jaxrnn.RNN(jaxrnn.LSTM(5))], residual=True).init(jax.random.key(0), F),
            ValueError,
            ("residual", "layers[1]", "4", "5"),
        ),
        (lambda: jaxrnn.LSTM(3).init(jax.random.key(0), 0), ValueError, ("LSTM.init", "'input_size'", "got 0")),
    ],
)
def test_bad_configuration(make, exc, fragments):
    with _raises(exc, *fragments):
        make()


def test_interop_bad_modules():
    with _raises(TypeError, "from_torch", "'module'", "got Linear"):
        jaxrnn.interop.from_torch(torch.nn.Linear(2, 3))
    layer, _ = jaxrnn.interop.from_torch(torch.nn.GRU(2, 3, num_layers=2))
    with _raises(ValueError, "'h_0'", "2 states", "got shape (3, 1, 3)"):
        jaxrnn.interop.from_torch_state(layer, np.zeros((3, 1, 3), np.float32))
    lstm, _ = jaxrnn.interop.from_torch(torch.nn.LSTM(2, 3))
    with _raises(ValueError, "'c_0'", "required"):
        jaxrnn.interop.from_torch_state(lstm, np.zeros((1, 1, 3), np.float32))
