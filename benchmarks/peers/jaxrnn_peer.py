"""jaxrnn itself."""

from __future__ import annotations

import jax

import jaxrnn
from jaxrnn.layers.tuning import default_fuse_directions
from benchmarks.peers.common import inputs, jax_dtype, make_jax_case
from benchmarks.spec import Case, Spec

FAMILY = "jaxrnn"


def layer_for(spec: Spec, *, fuse_directions: bool | None = None, **rnn_options) -> object:
    """jaxrnn's network for `spec`; options left out keep the library's defaults for this backend."""
    dtype = jax_dtype(spec)
    cell = {"lstm": jaxrnn.LSTM, "gru": jaxrnn.GRU, "rnn": jaxrnn.SimpleRNN}[spec.cell](spec.hidden, dtype=dtype)
    rnn = jaxrnn.RNN(cell, **rnn_options)
    unit = jaxrnn.Bidirectional(rnn, fuse_directions=fuse_directions) if spec.bidirectional else rnn
    return unit if spec.layers == 1 else jaxrnn.Stacked([unit] * spec.layers)


def build(spec: Spec) -> list[Case]:
    """jaxrnn with its defaults, plus the variants whose default is decided per backend by these numbers:
    for bidirectional networks the other choice of `fuse_directions` (both directions in one scan or
    two); on GPU / TPU, the loop not unrolled, to show what the default unroll of 8 buys; on GPU for
    LSTMs, the scan instead of the persistent kernel it runs by default where it fits."""
    variants = {"jaxrnn": {}}
    if spec.bidirectional:  # the other choice than this backend's default
        fuse = not default_fuse_directions()
        variants[f"jaxrnn[fuse_directions={fuse}]"] = {"fuse_directions": fuse}
    if jax.default_backend() != "cpu":
        variants["jaxrnn[unroll=1]"] = {"unroll": 1}
    if jax.default_backend() == "gpu" and spec.cell == "lstm":
        variants["jaxrnn[persistent=False]"] = {"persistent": False}
    xs = inputs(spec)
    cases = []
    for name, options in variants.items():
        layer = layer_for(spec, **options)
        params = layer.init(jax.random.key(0), spec.input_size)
        cases.append(make_jax_case(name, lambda p, x, layer=layer: layer.apply(p, x)[0], params, xs))
    return cases
