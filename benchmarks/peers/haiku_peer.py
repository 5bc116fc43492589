"""Haiku LSTM / GRU / VanillaRNN under `hk.dynamic_unroll` (batch-major)."""

from __future__ import annotations

import jax

from benchmarks.peers.common import cast_floats, inputs, jax_dtype, make_jax_case
from benchmarks.spec import Case, Spec, Unsupported

FAMILY = "haiku"


def build(spec: Spec) -> list[Case]:
    try:
        import haiku as hk
    except ImportError as err:
        raise Unsupported("dm-haiku is not installed (pip install '.[bench]')") from err
    if spec.bidirectional:
        raise Unsupported("haiku has no built-in bidirectional RNN")
    cls = {"lstm": hk.LSTM, "gru": hk.GRU, "rnn": hk.VanillaRNN}[spec.cell]

    def forward(xs):
        cores = [cls(spec.hidden) for _ in range(spec.layers)]
        core = cores[0] if spec.layers == 1 else hk.DeepRNN(cores)
        state = core.initial_state(xs.shape[0])
        state = jax.tree.map(lambda a: a.astype(xs.dtype), state)
        ys, _ = hk.dynamic_unroll(core, xs, state, time_major=False)
        return ys

    fn = hk.without_apply_rng(hk.transform(forward))
    xs = inputs(spec)
    params = cast_floats(fn.init(jax.random.key(0), xs), jax_dtype(spec))
    note = "VanillaRNN is ReLU in haiku" if spec.cell == "rnn" else ""
    return [make_jax_case(f"hk.{cls.__name__}", fn.apply, params, xs, note=note)]
