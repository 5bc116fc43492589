"""Helpers shared by the JAX peers."""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from benchmarks.spec import Case, Spec
from benchmarks.timing import block, compile_jax, jax_case_functions


def jax_dtype(spec: Spec) -> Any:
    return jnp.dtype(spec.dtype)


def inputs(spec: Spec) -> jax.Array:
    return jax.random.normal(jax.random.key(1), (spec.batch, spec.steps, spec.input_size), jax_dtype(spec))


def cast_floats(tree: Any, dtype: Any) -> Any:
    return jax.tree.map(lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)


def make_jax_case(impl: str, apply: Callable[[Any, jax.Array], jax.Array], params: Any, xs: jax.Array, note: str = "") -> Case:
    """AOT-compiles forward and forward+backward of `apply` and wraps them as a Case."""
    forward, forward_backward = jax_case_functions(apply, params, xs)
    fwd, s_fwd, m_fwd = compile_jax(forward, params, xs)
    fb, s_fb, m_fb = compile_jax(forward_backward, params, xs)
    return Case(
        impl=impl,
        forward=lambda: block(fwd(params, xs)),
        forward_backward=lambda: block(fb(params, xs)),
        compile_seconds={
            "fwd": s_fwd["trace_lower"] + s_fwd["compile"],
            "fwdbwd": s_fb["trace_lower"] + s_fb["compile"],
            "fwdbwd_xla_compile": s_fb["compile"],
        },
        memory_bytes={"fwd": m_fwd.get("peak_estimate"), "fwdbwd": m_fb.get("peak_estimate")},
        note=note,
    )
