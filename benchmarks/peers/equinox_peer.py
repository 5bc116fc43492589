"""Equinox LSTMCell / GRUCell, vmapped over the batch inside `lax.scan` (the usage its docs show)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from benchmarks.peers.common import cast_floats, inputs, jax_dtype, make_jax_case
from benchmarks.spec import Case, Spec, Unsupported

FAMILY = "equinox"


def build(spec: Spec) -> list[Case]:
    try:
        import equinox as eqx
    except ImportError as err:
        raise Unsupported("equinox is not installed (pip install '.[bench]')") from err
    if spec.cell == "rnn":
        raise Unsupported("equinox has no Elman cell")
    if spec.layers > 1 or spec.bidirectional:
        raise Unsupported("equinox has no built-in deep / bidirectional RNN")
    dtype = jax_dtype(spec)
    cls = {"lstm": eqx.nn.LSTMCell, "gru": eqx.nn.GRUCell}[spec.cell]
    cell = cast_floats(cls(spec.input_size, spec.hidden, key=jax.random.key(0)), dtype)
    params, static = eqx.partition(cell, eqx.is_array)

    def apply(params, xs):
        cell = eqx.combine(params, static)
        h = jnp.zeros((xs.shape[0], spec.hidden), xs.dtype)
        carry = (h, h) if spec.cell == "lstm" else h

        def step(carry, x_t):
            carry = jax.vmap(cell)(x_t, carry)
            return carry, carry[0] if spec.cell == "lstm" else carry

        _, ys = jax.lax.scan(step, carry, jnp.swapaxes(xs, 0, 1))
        return jnp.swapaxes(ys, 0, 1)

    return [make_jax_case(f"eqx.{cls.__name__}", apply, params, inputs(spec))]
