"""XLA:CPU's bfloat16 stacking, and what `jaxrnn.layers.stacking.scan` does about it.

    python -m benchmarks.bf16_stacking --json benchmarks/results/bf16_stacking.json

A minimal Elman loop, ``h = tanh(x_t + h @ w)`` scanned over T steps with its outputs stacked, timed
with `jax.lax.scan` and with `stacking.scan` (bfloat16 crosses the loop boundary as float32) in
alternation (`benchmarks.timing.measure_interleaved`), forward and forward+backward (``jax.grad``
w.r.t. ``w`` and the inputs). Each dtype's lax.scan row is the reference the other is divided by; a
float32 and a float16 row show that only bfloat16 is affected. Forward+backward stays slow with either:
autodiff stacks its own bfloat16 residuals inside the loop, which is why `jaxrnn.RNN` differentiates
bfloat16 loops on CPU with its fused backward (`jaxrnn.layers.fused`), or, for cells without one, with
`stacking.scan_recomputing` (its backward recomputes each step from the saved carry): the third loop
in the first table, and the second table, whole `jaxrnn.RNN` layers of such cells (layer-norm LSTM,
GRU with the reset gate before the product) trained in float32, in bfloat16 with autodiff
(``fused_backward=False``) and in bfloat16 with the default.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Any, Callable

import jax
import jax.numpy as jnp

import jaxrnn
from benchmarks import environment, report
from benchmarks.timing import block, compile_jax, measure_interleaved
from jaxrnn.layers import stacking

SHAPES = [(1000, 1, 64), (512, 16, 256), (64, 256, 512)]  # (T, B, H)
DTYPES = ("bfloat16", "float16", "float32")


def _recomputing(body: Callable, h0: Any, xs: Any, w: Any) -> tuple[Any, Any]:
    return stacking.scan_recomputing(lambda w, _, h, x, __: body(w, h, x), w, h0, xs)


LOOPS: dict[str, Callable] = {
    "lax.scan": lambda body, h0, xs, w: jax.lax.scan(lambda h, x: body(w, h, x), h0, xs),
    "stacking.scan": lambda body, h0, xs, w: stacking.scan(lambda h, x: body(w, h, x), h0, xs),
    "stacking.scan_recomputing": _recomputing,
}
CELL_SHAPES = [(1000, 1, 64), (512, 16, 256)]  # (T, B, H), 64 input features
CELLS: dict[str, Callable[[int, Any], Any]] = {
    "LSTM(layer_norm=True)": lambda h, dtype: jaxrnn.LSTM(h, layer_norm=True, dtype=dtype),
    "GRU(reset_after=False)": lambda h, dtype: jaxrnn.GRU(h, reset_after=False, dtype=dtype),
}
CELL_VARIANTS = {  # name: (dtype, fused_backward)
    "float32": ("float32", None),
    "bfloat16, autodiff": ("bfloat16", False),
    "bfloat16, default": ("bfloat16", None),
}


def elman(loop: Callable) -> Callable:
    """``(w, xs) -> ys``: the Elman loop, run by `loop` (an entry of `LOOPS`)."""

    def forward(w, xs):
        def body(w, h, x):
            h = jnp.tanh(x + h @ w)
            return h, h

        return loop(body, jnp.zeros(xs.shape[1:], xs.dtype), xs, w)[1]

    return forward


def measure_cells(shape: tuple[int, int, int], *, reps: int) -> list[dict[str, Any]]:
    """Forward+backward of `jaxrnn.RNN` over each of `CELLS` in each of `CELL_VARIANTS`, interleaved."""
    T, B, H = shape
    rows, runs = [], []
    for cell_name, make in CELLS.items():
        for variant, (dtype_name, fused_backward) in CELL_VARIANTS.items():
            dtype = jnp.dtype(dtype_name)
            layer = jaxrnn.RNN(make(H, dtype), fused_backward=fused_backward)
            params = layer.init(jax.random.key(0), 64)
            xs = jax.random.normal(jax.random.key(1), (B, T, 64)).astype(dtype)
            grad = jax.grad(lambda p, x, layer=layer: layer.apply(p, x)[0].astype(jnp.float32).sum(), argnums=(0, 1))
            compiled = compile_jax(grad, params, xs)[0]
            runs.append(lambda c=compiled, p=params, x=xs: block(c(p, x)))
            rows.append({"T": T, "B": B, "H": H, "cell": cell_name, "variant": variant})
    for row, t in zip(rows, measure_interleaved(runs, reps=reps, warmup=1, min_seconds=2.0)):
        row["median"] = t["median"]
    return rows


def measure_case(shape: tuple[int, int, int], dtype_name: str, *, reps: int) -> list[dict[str, Any]]:
    T, B, H = shape
    dtype = jnp.dtype(dtype_name)
    w = (jax.random.normal(jax.random.key(0), (H, H)) * 0.5 / H**0.5).astype(dtype)
    xs = jax.random.normal(jax.random.key(1), (T, B, H)).astype(dtype)
    rows, runs = [], []
    for name, loop in LOOPS.items():
        forward = elman(loop)
        for mode in ("fwd", "fwdbwd"):
            fn = forward if mode == "fwd" else jax.grad(
                lambda w, x, f=forward: f(w, x).astype(jnp.float32).sum(), argnums=(0, 1))
            compiled = compile_jax(fn, w, xs)[0]
            runs.append(lambda c=compiled: block(c(w, xs)))
            rows.append({"T": T, "B": B, "H": H, "dtype": dtype_name, "loop": name, "mode": mode})
    for row, t in zip(rows, measure_interleaved(runs, reps=reps, warmup=2, min_seconds=2.0)):
        row["median"] = t["median"]
    return rows


def markdown(rows: list[dict[str, Any]], env: dict[str, Any], command: str, cell_rows: list[dict[str, Any]] = ()) -> str:
    ref = {(r["T"], r["B"], r["H"], r["dtype"], r["mode"]): r["median"] for r in rows if r["loop"] == "lax.scan"}
    lines = [
        f"## bfloat16 stacking on XLA:CPU — {env.get('gpu') or env['cpu_model']}",
        "",
        f"Command: `{command}`. `h = tanh(x_t + h @ w)` scanned over T steps, outputs stacked; medians of "
        "alternating runs in ms, in brackets the time over `jax.lax.scan`'s in the same dtype and mode. "
        "Forward+backward is `jax.grad` w.r.t. `w` and the inputs.",
        "",
        "| T, B, H | dtype | loop | fwd ms | fwd+bwd ms |",
        "|---|---|---|---|---|",
    ]
    by_loop: dict[tuple, dict[str, float]] = {}
    for r in rows:
        by_loop.setdefault((r["T"], r["B"], r["H"], r["dtype"], r["loop"]), {})[r["mode"]] = r["median"]
    for (T, B, H, dtype, loop), times in by_loop.items():
        cells = []
        for mode in ("fwd", "fwdbwd"):
            t = times.get(mode)
            cells.append("–" if t is None else f"{t * 1e3:.3g} ({t / ref[(T, B, H, dtype, mode)]:.2f})")
        lines.append(f"| {T}, {B}, {H} | {dtype} | `{loop}` | " + " | ".join(cells) + " |")
    if cell_rows:
        lines += [
            "",
            "Cells without a fused backward, whole `jaxrnn.RNN` layers (64 input features), forward+backward "
            "medians in ms; in brackets the time over the same cell's float32 time.",
            "",
            "| T, B, H | cell | " + " | ".join(CELL_VARIANTS) + " |",
            "|---|---|" + "---|" * len(CELL_VARIANTS),
        ]
        by_cell: dict[tuple, dict[str, float]] = {}
        for r in cell_rows:
            by_cell.setdefault((r["T"], r["B"], r["H"], r["cell"]), {})[r["variant"]] = r["median"]
        for (T, B, H, cell), times in by_cell.items():
            cells = [f"{times[v] * 1e3:.3g} ({times[v] / times['float32']:.2f})" for v in CELL_VARIANTS]
            lines.append(f"| {T}, {B}, {H} | `{cell}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=pathlib.Path)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="one tiny case, to check the runner works")
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args(argv)
    env = environment.describe()
    command = report.command_line("benchmarks.bf16_stacking", argv)
    cases = [((6, 2, 4), "bfloat16")] if args.quick else [(s, d) for s in SHAPES for d in DTYPES]
    rows: list[dict[str, Any]] = []
    for shape, dtype in cases:
        rows += measure_case(shape, dtype, reps=args.reps)
        print("  ".join(f"{r['loop']} {r['mode']} {r['median'] * 1e3:.3g} ms" for r in rows[-2 * len(LOOPS):]), shape, dtype)
        report.write_json(args.json, {"environment": env, "command": command, "rows": rows})
    cell_rows: list[dict[str, Any]] = []
    for shape in [(5, 2, 8)] if args.quick else CELL_SHAPES:
        cell_rows += measure_cells(shape, reps=args.reps)
        print("  ".join(f"{r['cell']} {r['variant']} {r['median'] * 1e3:.3g} ms" for r in cell_rows[-len(CELLS) * len(CELL_VARIANTS):]), shape)
        report.write_json(args.json, {"environment": env, "command": command, "rows": rows, "cell_rows": cell_rows})
    if not args.no_report:
        report.write_section("bf16-stacking", markdown(rows, env, command, cell_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
