"""How fast any `lax.scan` RNN can be on this machine: a floor measured from XLA's own GEMMs.

    python -m benchmarks.roofline --results benchmarks/results/cpu.json --json benchmarks/results/roofline.json

Every JAX implementation timed in ``benchmarks.run`` (jaxrnn and its peers) runs the recurrence as a
`while` loop with one ``[B, H] x [H, G*H]`` GEMM per step forward and one ``[B, G*H] x [G*H, H]``
GEMM per step backward (G = 4 LSTM, 3 GRU, 1 Elman); everything else (input projections, weight
gradients) can be batched over all steps. So, per shape:

    floor(fwd+bwd) = T x step GEMM forward  +  T x step GEMM backward  +  batched FLOPs / peak

with each chain timed as a `lax.scan` of nothing but that GEMM (and a slice to feed it back), and
the peak the best of a few large GEMMs. The gate math, the loop's bookkeeping and the memory traffic
count as free, so the floor is a lower bound no scan-based implementation can beat, jaxrnn included.
The report compares it with the measured times of the CPU suite and says where the issue's target
("1.5x faster than the fastest JAX peer") lies below it.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from typing import Any

import jax
import jax.numpy as jnp

from benchmarks import environment, report
from benchmarks.spec import Spec
from benchmarks.suites import CPU_SHAPES
from benchmarks.timing import block, compile_jax, measure

GATES = {"lstm": 4, "gru": 3, "rnn": 1}
PEAK_SHAPES = [(2048, 2048, 2048), (4096, 512, 2048), (16384, 512, 1536)]  # (M, K, N)
TARGET_SPEEDUP = 1.5


def _median_seconds(fn: Any, *args: Any, reps: int) -> float:
    compiled = compile_jax(fn, *args)[0]
    return measure(lambda: block(compiled(*args)), reps=reps, warmup=1)["median"]


def peak_flops(shapes: list[tuple[int, int, int]] = PEAK_SHAPES, *, reps: int = 5) -> float:
    """The best float32 GEMM throughput (FLOP/s) XLA reaches on this machine over `shapes`."""
    best = 0.0
    for m, k, n in shapes:
        a = jax.random.normal(jax.random.key(0), (m, k))
        b = jax.random.normal(jax.random.key(1), (k, n))
        best = max(best, 2.0 * m * k * n / _median_seconds(jnp.matmul, a, b, reps=reps))
    return best


def step_chain_seconds(batch: int, hidden: int, gates: int, steps: int, *, backward: bool, reps: int = 5) -> float:
    """A `lax.scan` of `steps` dependent GEMMs of one step's shape, and nothing else."""
    wide = gates * hidden
    w = jax.random.normal(jax.random.key(0), (wide, hidden) if backward else (hidden, wide)) / hidden**0.5
    start = jnp.ones((batch, wide if backward else hidden))

    def chain(w, start):
        def body(a, _):
            out = a @ w  # forward [B,H]x[H,GH]; backward [B,GH]x[GH,H]
            return (jnp.tile(out, (1, gates)) if backward else out[:, :hidden]), None

        return jax.lax.scan(body, start, None, length=steps)[0]

    return _median_seconds(chain, w, start, reps=reps)


def floor(spec: Spec, peak: float, *, reps: int = 5) -> dict[str, float]:
    """Lower bounds (seconds) for forward and forward+backward of a one-layer `spec`."""
    g, b, t, i, h = GATES[spec.cell], spec.batch, spec.steps, spec.input_size, spec.hidden
    fwd_chain = step_chain_seconds(b, h, g, t, backward=False, reps=reps)
    bwd_chain = step_chain_seconds(b, h, g, t, backward=True, reps=reps)
    projection = 2.0 * b * t * i * g * h  # x W_ih for all steps
    weight_grads = 2.0 * b * t * (i + h) * g * h  # dW_ih, dW_hh over all steps
    input_grads = projection  # dX = dU W_ih^T
    return {
        "fwd_chain": fwd_chain,
        "bwd_chain": bwd_chain,
        "fwd": fwd_chain + projection / peak,
        "fwdbwd": fwd_chain + bwd_chain + (projection + weight_grads + input_grads) / peak,
        "compute_only_fwdbwd": 3.0 * spec.flops() / peak,
    }


def measured(results: list[dict], spec: Spec) -> dict[str, Any]:
    """jaxrnn's, the fastest JAX peer's and PyTorch's forward+backward medians for `spec` from a run."""
    rows = [r for r in results if r["spec"] == vars(spec) and "fwdbwd" in r]  # skipped peers have no times
    jax_peers = [r for r in rows if r["family"] not in ("jaxrnn", "pytorch")]
    best = min(jax_peers, key=lambda r: r["fwdbwd"]["median"], default=None)
    mine = next((r for r in rows if r["impl"] == "jaxrnn"), None)
    torch = next((r for r in rows if r["family"] == "pytorch"), None)
    return {
        "jaxrnn": mine and mine["fwdbwd"]["median"],
        "best_peer": best and best["fwdbwd"]["median"],
        "best_peer_impl": best and best["impl"],
        "torch": torch and torch["fwdbwd"]["median"],
    }


def analyse(
    specs: list[Spec], results: list[dict], *, peak_shapes: list[tuple[int, int, int]] = PEAK_SHAPES, reps: int = 5, log=print
) -> tuple[float, list[dict]]:
    peak = peak_flops(peak_shapes, reps=reps)
    log(f"peak float32 GEMM: {peak / 1e9:.1f} GFLOP/s")
    rows = []
    for spec in specs:
        row = {"network": spec.network, "shape": spec.shape, **floor(spec, peak, reps=reps), **measured(results, spec)}
        if row["best_peer"]:
            row["target"] = row["best_peer"] / TARGET_SPEEDUP
        log(f"{spec.network:5s} {spec.shape:28s} floor f+b {row['fwdbwd'] * 1e3:8.2f} ms  best peer "
            f"{(row['best_peer'] or 0) * 1e3:8.2f}  jaxrnn {(row['jaxrnn'] or 0) * 1e3:8.2f}")
        rows.append(row)
    return peak, rows


def _ms(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds * 1e3:.3g}"


def _x(a: float | None, b: float | None) -> str:
    return "–" if a is None or b is None else f"{a / b:.2f}"


def markdown(peak: float, rows: list[dict], env: dict, command: str, source: str) -> str:
    lines = [
        f"## Roofline — how fast a scan can be on {env.get('gpu') or env['cpu_model']}",
        "",
        f"Command: `{command}` (measured times from `{source}`). Peak float32 GEMM throughput measured "
        f"here: **{peak / 1e9:.1f} GFLOP/s**. The floor is T step-GEMMs forward plus T backward, each chain "
        "timed alone as a `lax.scan`, plus the batchable FLOPs at peak; gate math and loop bookkeeping count "
        "as free, so no `lax.scan` implementation can go below it. Target = fastest JAX peer / "
        f"{TARGET_SPEEDUP}: where it is below the floor, the target cannot be met by any scan of XLA GEMMs.",
        "",
        "| network | shape | floor fwd+bwd ms (step chains fwd / bwd) | compute-only ms | jaxrnn ms | fastest JAX peer ms | "
        "target ms | target / floor | jaxrnn / floor | peer / floor | torch / floor |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        target = r.get("target")
        verdict = "" if target is None else (" **below floor**" if target < r["fwdbwd"] else "")
        lines.append(
            f"| {r['network']} | {r['shape']} | {_ms(r['fwdbwd'])} ({_ms(r['fwd_chain'])} / {_ms(r['bwd_chain'])}) | "
            f"{_ms(r['compute_only_fwdbwd'])} | {_ms(r['jaxrnn'])} | {_ms(r['best_peer'])} ({r['best_peer_impl'] or '–'}) | "
            f"{_ms(target)} | {_x(target, r['fwdbwd'])}{verdict} | {_x(r['jaxrnn'], r['fwdbwd'])} | "
            f"{_x(r['best_peer'], r['fwdbwd'])} | {_x(r['torch'], r['fwdbwd'])} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=pathlib.Path, default=pathlib.Path("benchmarks/results/cpu.json"),
                        help="a benchmarks.run JSON to compare with (its float32 one-layer rows)")
    parser.add_argument("--json", type=pathlib.Path)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="tiny shapes, to check the runner works")
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args(argv)
    results = json.loads(args.results.read_text())["results"] if args.results.exists() else []
    shapes = [(2, 6, 3, 4)] if args.quick else CPU_SHAPES
    specs = [Spec(cell, *shape) for shape in shapes for cell in GATES]
    peak, rows = analyse(specs, results, peak_shapes=[(64, 64, 64)] if args.quick else PEAK_SHAPES, reps=args.reps)
    env = environment.describe()
    command = report.command_line("benchmarks.roofline", argv)
    report.write_json(args.json, {"environment": env, "command": command, "peak_flops": peak, "rows": rows})
    if not args.no_report:
        report.write_section("roofline", markdown(peak, rows, env, command, str(args.results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
