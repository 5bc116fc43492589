"""`scan`: ``jax.lax.scan`` that keeps XLA:CPU's bfloat16 slowdown out of the loops.

XLA:CPU has no bfloat16 arithmetic: its float-normalization pass computes bfloat16 ops in float32
between converts, and it does so for the ``dynamic-update-slice`` that writes a step's output into
the stacked outputs too. The convert pair then wraps the *whole* stacked buffer, so every step copies
all T steps twice instead of writing one (O(T^2), not in place). ``python -m benchmarks.bf16_stacking``
(``h = tanh(x_t + h @ w)`` scanned over T steps, forward, this repository's 2-core CPU, jax 0.10.2):
`jax.lax.scan` in bfloat16 103 / 160 / 156 ms at (T, B, H) = (1000, 1, 64) / (512, 16, 256) /
(64, 256, 512), against 0.72 / 21.6 / 111 ms in float32; `scan` here 0.80 / 25.6 / 119 ms. float16
is not affected. The same happens to the residuals and cotangents that autodiff of a scan stacks:
Flax, Equinox and Haiku train a bfloat16 RNN on CPU 1.3-73x slower (median 3.2x) than in float32
(``benchmarks/RESULTS.md``, suite cpu), and so did jaxrnn before this module; its bfloat16
forward+backward is now 0.9-1.9x its float32 time (the fused cells; the others 1.2-2.2x, `scan_recomputing`).

The way round is to stack something XLA does not normalise. `scan` moves bfloat16 leaves of the
scanned inputs and the stacked outputs across the loop boundary as float32 (exact both ways: every
bfloat16 is a float32), so the loop writes one float32 step in place; the step itself still computes
in bfloat16. That costs those buffers twice their memory. Moving them as their 16-bit patterns
(``uint16``) would not, and measured as fast, but its gradient is silently zero, and the custom VJP's
loops are themselves differentiated for second-order derivatives. Other backends have native
bfloat16 and get `jax.lax.scan` unchanged.

`scan` fixes a loop's own inputs and outputs, not the residuals autodiff stacks to differentiate it.
`jaxrnn.RNN` keeps those out of the loop with its fused backward (`jaxrnn.layers.fused`) or, for
cells without one, with `scan_recomputing`, whose backward recomputes each step from the carry
that entered it.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp


def affected(*trees: Any) -> bool:
    """Whether a loop over `trees` (arrays, or anything with a ``dtype``) runs into XLA:CPU's
    bfloat16 stacking: on CPU, when any leaf is bfloat16."""
    if jax.default_backend() != "cpu":
        return False
    return any(getattr(leaf, "dtype", None) == jnp.bfloat16 for leaf in jax.tree.leaves(trees))


def scan(body: Callable[[Any, Any], tuple[Any, Any]], carry: Any, xs: Any, **scan_kwargs: Any) -> tuple[Any, Any]:
    """``jax.lax.scan(body, carry, xs, **scan_kwargs)``, same values and gradients, with bfloat16
    leaves of `xs` and of the stacked outputs crossing the loop boundary as float32 on XLA:CPU.

    Example::

        def step(h, x):
            h = jnp.tanh(x + h @ w)
            return h, h

        h_last, hs = stacking.scan(step, h0, xs)   # xs, h0, w bfloat16: hs is bfloat16
    """
    if jax.default_backend() != "cpu":
        return jax.lax.scan(body, carry, xs, **scan_kwargs)
    out_dtypes: list[Any] = []

    def wrapped(c: Any, x: Any) -> tuple[Any, Any]:
        c, y = body(c, jax.tree.map(_narrow, x, in_dtypes))
        out_dtypes[:] = [jax.tree.map(lambda a: a.dtype, y)]
        return c, jax.tree.map(_widen, y)

    in_dtypes = jax.tree.map(lambda a: a.dtype, xs)
    carry, ys = jax.lax.scan(wrapped, carry, jax.tree.map(_widen, xs), **scan_kwargs)
    return carry, jax.tree.map(_narrow, ys, out_dtypes[0])


def for_loop(tree: Any) -> Any:
    """`tree` as a loop should carry a buffer it updates in place step by step: bfloat16 leaves as
    float32 on XLA:CPU (exact), unchanged on other backends. `from_loop` turns it back."""
    return jax.tree.map(_widen, tree) if jax.default_backend() == "cpu" else tree


def from_loop(tree: Any, dtypes: Any) -> Any:
    """Undoes `for_loop`: the leaves of `tree` back to `dtypes` (a tree of dtypes shaped like it)."""
    return jax.tree.map(_narrow, tree, dtypes)


def _widen(a: jax.Array) -> jax.Array:
    return a.astype(jnp.float32) if a.dtype == jnp.bfloat16 else a


def _narrow(a: jax.Array, dtype: Any) -> jax.Array:
    return a.astype(dtype) if dtype == jnp.bfloat16 else a


def scan_recomputing(
    step: Callable[..., tuple[Any, Any]],
    params: Any,
    carry: Any,
    xs: Any,
    fixed: Any = None,
    fixed_xs: Any = None,
    **scan_kwargs: Any,
) -> tuple[Any, Any]:
    """`scan` of ``step(params, fixed, c, x, fixed_x) -> (c, y)`` over `xs` (with `fixed_xs`, scanned
    alongside), whose backward pass recomputes each step from the carry that entered it.

    Gradients flow to `params`, `carry` and `xs`; `fixed` (constants) and `fixed_xs` (per-step
    inputs, e.g. masks) get none. Same values as autodiff of `scan`; the parameter gradients are summed
    over the steps in float32 when they are bfloat16 on CPU (autodiff sums in their own dtype).

    Why: autodiff of a loop stacks every intermediate of every step it needs for the backward pass,
    and on XLA:CPU a bfloat16 stack is rewritten whole at each step (see the module docstring), so a
    bfloat16 RNN whose cell has no fused backward (`jaxrnn.layers.fused`) trained 4-8x slower than
    in float32. Here the forward keeps only the carries (as float32 on CPU, written in place), and the
    backward loop runs ``jax.vjp`` of one step at a time: about one more forward pass of compute, the
    same trade as ``jax.checkpoint`` around each step, without a bfloat16 stack anywhere (a
    layer-norm LSTM at (B, T, I, H) = (16, 512, 64, 256): forward+backward 5.35 s -> 0.76 s, 0.64 s in
    float32; ``python -m benchmarks.bf16_stacking``). In float32 it costs 5-20% more than autodiff.

    Example::

        def step(params, fixed, h, x, fixed_x):
            h = jnp.tanh(x @ params["w_ih"] + h @ params["w_hh"])
            return h, h

        h_last, hs = stacking.scan_recomputing(step, params, h0, xs)    # bfloat16 on CPU: fast backward
    """
    reverse = scan_kwargs.get("reverse", False)

    def forward(params, carry, xs, fixed, fixed_xs, save):
        def body(c, inputs):
            x, fx = inputs
            new_c, y = step(params, fixed, c, x, fx)
            return new_c, ((y, c) if save else y)

        return scan(body, carry, (xs, fixed_xs), **scan_kwargs)

    @jax.custom_vjp
    def run(params, carry, xs, fixed, fixed_xs):
        return forward(params, carry, xs, fixed, fixed_xs, save=False)

    def run_fwd(params, carry, xs, fixed, fixed_xs):
        final, (ys, carries) = forward(params, carry, xs, fixed, fixed_xs, save=True)
        return (final, ys), (params, xs, fixed, fixed_xs, carries)

    def run_bwd(residuals, cotangents):
        params, xs, fixed, fixed_xs, carries = residuals
        d_final, d_ys = cotangents
        param_dtypes = jax.tree.map(lambda a: a.dtype, params)

        def body(acc, inputs):
            dc, d_params = acc
            c, x, fx, dy = inputs
            _, vjp = jax.vjp(lambda p, c, x: step(p, fixed, c, x, fx), params, c, x)
            d_params_t, dc_prev, dx = vjp((dc, dy))
            return (dc_prev, jax.tree.map(lambda a, b: a + b.astype(a.dtype), d_params, d_params_t)), dx

        init = (d_final, for_loop(jax.tree.map(jnp.zeros_like, params)))
        loop_kwargs = {**scan_kwargs, "reverse": not reverse}
        (d_carry, d_params), d_xs = scan(body, init, (carries, xs, fixed_xs, d_ys), **loop_kwargs)
        return from_loop(d_params, param_dtypes), d_carry, d_xs, None, None

    run.defvjp(run_fwd, run_bwd)
    return run(params, carry, xs, fixed, fixed_xs)


__all__ = ["affected", "for_loop", "from_loop", "scan", "scan_recomputing"]
