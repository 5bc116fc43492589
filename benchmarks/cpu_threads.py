"""Does this machine give two threads twice one thread's speed, and does that hold over time?

    python -m benchmarks.cpu_threads --json benchmarks/results/cpu_threads.json
    python -m benchmarks.cpu_threads --quick --no-report      # tiny sizes: checks that the script runs

The CPU kernel (`jaxrnn.kernels.cpu_recurrence`) splits a layer over every core; the JAX peers' loops
are mostly single-threaded. A virtual machine's vCPUs are threads of the host, and when the host puts
two of them on the two hyperthreads of one physical core, two busy threads share that core's FMA
units and each runs at about half speed, with no steal time reported to the guest. This times the
kernel's LSTM forward on one thread and on all cores in alternation, round after round: one thread's
time is the steady reference (it has a core to itself either way), so each round's speed-up says
which regime the machine was in. Where the speed-up falls to ~1, no multi-threaded code can go faster
than one core's throughput, whatever it does; `--rounds` sets how long the machine is watched.

    python -m benchmarks.cpu_threads --after-torch --json benchmarks/results/cpu_threads_after_torch.json

runs PyTorch's LSTM (same shape, its default threads) before every timed call: what a multi-threaded
call meets in `benchmarks.run`'s one process, where PyTorch's OpenMP threads keep spinning after
their call returns.
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp

from benchmarks import environment, report
from jaxrnn.kernels import cpu_recurrence

SHAPE = (16, 512, 64, 256)  # (B, T, I, H): the CPU suite's LSTM shape with the most work per step
CONTENDED = 1.4  # a round whose speed-up is below this ran on (mostly) one core's throughput


def _lstm_forward(shape: tuple[int, int, int, int], threads: int):
    B, T, I, H = shape
    keys = jax.random.split(jax.random.key(0), 3)
    xs = jax.random.normal(keys[0], (T, B, I))
    w_ih, w_hh = (jax.random.normal(k, s) * 0.1 for k, s in zip(keys[1:], [(I, 4 * H), (H, 4 * H)]))
    h0 = jnp.zeros((B, H))
    fn = jax.jit(lambda xs, w_ih, w_hh: cpu_recurrence.lstm_forward(xs, w_ih, w_hh, None, h0, h0, threads=threads)[0])
    return lambda: jax.block_until_ready(fn(xs, w_ih, w_hh))


def _torch_lstm(shape: tuple[int, int, int, int]):
    import torch  # a benchmark-only dependency, as in benchmarks.peers

    B, T, I, H = shape
    lstm, xs = torch.nn.LSTM(I, H), torch.randn(T, B, I)

    def call():
        with torch.no_grad():
            lstm(xs)

    return call


def watch(shape: tuple[int, int, int, int], *, rounds: int, calls: int = 3, before=None, log=print) -> dict[str, Any]:
    """`rounds` rounds of `calls` calls on one thread then `calls` on every core; each round's medians.
    `before` (untimed) runs before every timed call."""
    threads = cpu_recurrence.cores()
    one, many = _lstm_forward(shape, 1), _lstm_forward(shape, threads)
    for fn in (one, many):
        fn()
    rows = []
    for r in range(rounds):
        times = []
        for fn in (one, many):
            ts = []
            for _ in range(calls):
                if before is not None:
                    before()
                t0 = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - t0)
            times.append(statistics.median(ts))
        rows.append({"round": r, "one": times[0], "all": times[1], "speedup": times[0] / times[1]})
        log(f"round {r}: 1 thread {times[0] * 1e3:.1f} ms, {threads} threads {times[1] * 1e3:.1f} ms "
            f"({rows[-1]['speedup']:.2f}x)")
    B, T, I, H = shape
    flops = 2.0 * T * B * (I + H) * 4 * H
    spread = {k: [row[k] for row in rows] for k in ("one", "all", "speedup")}
    return {
        "shape": shape, "threads": threads, "after_torch": before is not None, "rounds": rows, "flops": flops,
        **{k: {"median": statistics.median(v), "min": min(v), "max": max(v)} for k, v in spread.items()},
        "contended_share": sum(u < CONTENDED for u in spread["speedup"]) / len(rows),
    }


def markdown(result: dict[str, Any], env: dict[str, Any], command: str) -> str:
    def ms(d):
        return f"{d['median'] * 1e3:.1f} ({d['min'] * 1e3:.1f}–{d['max'] * 1e3:.1f})"

    one, n = result["one"], result["threads"]
    return "\n".join([
        f"## One thread against {n}{' after PyTorch' if result.get('after_torch') else ''} — {env['cpu_model']}",
        "",
        f"Command: `{command}`. The CPU kernel's LSTM forward at (B, T, I, H) = {tuple(result['shape'])}, "
        f"{len(result['rounds'])} rounds of 3 calls on one thread then 3 on {n}, alternating"
        + (", each call right after a PyTorch LSTM forward of the same shape" if result.get("after_torch") else "")
        + "; per-round medians, "
        "ms, median (min–max) over the rounds. One thread keeps a core to itself either way, so its time is the "
        "reference; the speed-up says whether the second thread had a core of its own that round. "
        f"Rounds below {CONTENDED}x ran at about one core's throughput, where no multi-threaded code "
        "(the kernel, PyTorch, XLA's multi-threaded GEMMs) can beat a single-threaded peer by more than "
        "its own single-thread efficiency.",
        "",
        f"| 1 thread ms | {n} threads ms | speed-up | rounds below {CONTENDED}x | 1 thread GFLOP/s (best) |",
        "|---|---|---|---|---|",
        f"| {ms(one)} | {ms(result['all'])} | {result['speedup']['median']:.2f} "
        f"({result['speedup']['min']:.2f}–{result['speedup']['max']:.2f}) | {result['contended_share']:.0%} | "
        f"{result['flops'] / one['min'] / 1e9:.1f} |",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--json", type=pathlib.Path)
    parser.add_argument("--quick", action="store_true", help="a tiny shape and 2 rounds, to check the script runs")
    parser.add_argument("--after-torch", action="store_true", help="run PyTorch's LSTM before every timed call")
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args(argv)
    if (reason := cpu_recurrence.unavailable_reason()) is not None or jax.default_backend() != "cpu":
        print(f"skipped: needs the CPU backend and the CPU kernel ({reason or jax.default_backend()})")
        return 0
    shape = (2, 8, 3, 32) if args.quick else SHAPE
    result = watch(shape, rounds=2 if args.quick else args.rounds, before=_torch_lstm(shape) if args.after_torch else None)
    env = environment.describe()
    command = report.command_line("benchmarks.cpu_threads", argv)
    report.write_json(args.json, {"environment": env, "command": command, **result})
    if not args.no_report:
        report.write_section("cpu-threads-after-torch" if args.after_torch else "cpu-threads", markdown(result, env, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
