"""Timing: warm-up, then the median / min / max of repeated runs; compile time apart."""

from __future__ import annotations

import math
import os
import random
import statistics
import time
from typing import Any, Callable, Sequence

import jax
import numpy as np


def block(tree: Any) -> Any:
    """Blocks on every JAX array in `tree` (torch results are synchronous on CPU)."""
    for leaf in jax.tree.leaves(tree):
        if hasattr(leaf, "block_until_ready"):
            leaf.block_until_ready()
    return tree


def measure(fn: Callable[[], Any], *, reps: int, warmup: int) -> dict[str, float]:
    """Runs `fn` `warmup` times untimed, then `reps` timed runs; returns seconds and the load seen."""
    return measure_interleaved([fn], reps=reps, warmup=warmup)[0]


def measure_interleaved(
    fns: Sequence[Callable[[], Any]], *, reps: int, warmup: int, min_seconds: float = 0.0
) -> list[dict[str, float]]:
    """`measure` for several functions at once, timed in turn: each round calls every function once.

    On a shared machine the speed drifts by 10-30% over minutes; timing one function after another
    would put that drift into their ratios, while rounds spread it over all of them alike. At least
    `reps` rounds, more (up to 20x) until about `min_seconds` are spent: millisecond calls scatter
    by 2x here, and only many rounds make their medians repeatable. At least one warm-up call (it
    also times a round).

    Whatever a call leaves behind falls on the next one: PyTorch's OpenMP (libgomp) threads keep
    spinning on a core after its call. So each round calls the functions in a fresh random order
    (seeded), so every function follows every other about equally often. An earlier version only rotated
    the starting function, which kept each function's predecessor the same in all but one call per
    round: the function listed after PyTorch's (jaxrnn, first in every suite) paid for its spinning
    threads, +46% at LSTM (1,1000,8,64) against +5-13% for the JAX peers (runs with and without
    PyTorch, one after the other). Pausing after each call instead made every call slower
    (threads woken from sleep), PyTorch's most."""
    t0 = time.perf_counter()
    for fn in fns:
        for _ in range(max(warmup, 1)):
            fn()
    round_seconds = (time.perf_counter() - t0) / max(warmup, 1)
    rounds = max(reps, min(20 * reps, math.ceil(min_seconds / max(round_seconds, 1e-9))))
    load_before = os.getloadavg()[0]
    times: list[list[float]] = [[] for _ in fns]
    order = list(range(len(fns)))
    shuffle = random.Random(0).shuffle
    for _ in range(rounds):
        shuffle(order)
        for i in order:
            t0 = time.perf_counter()
            fns[i]()
            times[i].append(time.perf_counter() - t0)
    load = max(load_before, os.getloadavg()[0])
    return [
        {"median": statistics.median(t), "min": min(t), "max": max(t), "reps": rounds, "load_avg_1min": load}
        for t in times
    ]


def compile_jax(fn: Callable, *args: Any) -> tuple[Callable, dict[str, float], dict[str, int]]:
    """AOT-compiles ``jax.jit(fn)`` for `args`; returns the executable, trace+lower and compile seconds,
    and XLA's memory analysis (arguments, outputs, temporaries: what the executable needs at its peak)."""
    t0 = time.perf_counter()
    lowered = jax.jit(fn).lower(*args)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
    seconds = {"trace_lower": t1 - t0, "compile": t2 - t1}
    memory: dict[str, int] = {}
    analysis = compiled.memory_analysis()
    if analysis is not None:
        memory = {
            "arguments": int(analysis.argument_size_in_bytes),
            "outputs": int(analysis.output_size_in_bytes),
            "temporaries": int(analysis.temp_size_in_bytes),
        }
        memory["peak_estimate"] = memory["arguments"] + memory["outputs"] + memory["temporaries"]
    return compiled, seconds, memory


def jax_case_functions(apply: Callable, params: Any, xs: Any):
    """Forward and forward+backward (value_and_grad w.r.t. params and inputs) of `apply(params, xs) -> ys`.

    The loss is the float32 sum of the outputs, so every output element is differentiated."""

    def forward(p, x):
        return apply(p, x)

    def loss(p, x):
        return apply(p, x).astype(np.float32).sum()

    return forward, jax.value_and_grad(loss, argnums=(0, 1))
