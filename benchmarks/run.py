"""Benchmark runner: jaxrnn and every peer on the same shapes, in one process run.

    python -m benchmarks.run --suite cpu --json benchmarks/results/cpu.json
    python -m benchmarks.run --suite quick --no-report          # smoke run, tiny shapes

Peers that are not installed (or cannot run a case) are skipped with a note.
"""

from __future__ import annotations

import argparse
import gc
import pathlib
import sys
import time
import traceback
from typing import Any, Callable

from benchmarks import environment, report, suites
from benchmarks.peers import ALL
from benchmarks.spec import Unsupported
from benchmarks.timing import measure_interleaved


def run(specs, *, reps: int, warmup: int, min_seconds: float = 0.0, families: set[str] | None = None, log=print,
        after_spec: Callable[[list[dict[str, Any]]], None] | None = None) -> list[dict[str, Any]]:
    """Times every selected peer family on every spec; returns one entry per (spec, impl).

    All implementations of one spec are built (compiled) first and then timed in turn, one call each
    per round in a fresh random order (`measure_interleaved`), so the machine's drift does not enter
    the ratios.
    `after_spec(results_so_far)` runs after each spec: a run cut off by a time limit keeps what it had."""
    results = []
    for spec in specs:
        log(f"== {spec.network} {spec.shape} {spec.dtype}")
        entries, cases = [], []
        for peer in ALL:
            if families and peer.FAMILY not in families:
                continue
            base = {"network": spec.network, "shape": spec.shape, "dtype": spec.dtype, "family": peer.FAMILY,
                    "spec": spec.__dict__}
            try:
                built = peer.build(spec)
            except Unsupported as why:
                results.append({**base, "impl": peer.FAMILY, "skipped": str(why)})
                continue
            except Exception as err:  # a peer that breaks must not stop the run; it is reported
                results.append({**base, "impl": peer.FAMILY, "skipped": f"error: {type(err).__name__}: {err}"})
                traceback.print_exc()
                continue
            for case in built:
                entries.append({**base, "impl": case.impl, "compile_seconds": case.compile_seconds,
                                "memory_bytes": case.memory_bytes, "note": case.note})
                cases.append(case)
        try:
            for mode in ("fwd", "fwdbwd"):
                fns = [case.forward if mode == "fwd" else case.forward_backward for case in cases]
                for entry, stats in zip(entries, measure_interleaved(fns, reps=reps, warmup=warmup, min_seconds=min_seconds)):
                    entry[mode] = stats
        except Exception as err:  # e.g. out of device memory: report the spec, go on with the next
            traceback.print_exc()
            results += [{**e, "skipped": f"timing failed: {type(err).__name__}: {err}"} for e in entries]
            del cases
            gc.collect()
            continue
        for entry in entries:
            log(f"   {entry['impl']:32s} fwd {entry['fwd']['median']*1e3:9.3f} ms   f+b {entry['fwdbwd']['median']*1e3:9.3f} ms")
        results += entries
        del cases
        gc.collect()
        if after_spec is not None:
            after_spec(results)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=sorted(suites.SUITES), default="cpu")
    parser.add_argument("--json", type=pathlib.Path, help="write raw results here")
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--min-seconds", type=float, default=5.0,
                        help="per shape and mode, keep timing rounds (up to 20x --reps) until this long")
    parser.add_argument(
        "--families", default="",
        help="comma-separated peer families to run (default: all): " + ",".join(p.FAMILY for p in ALL),
    )
    parser.add_argument("--cells", default="", help="comma-separated cells to keep: lstm,gru,rnn")
    parser.add_argument("--dtypes", default="", help="comma-separated dtypes to keep")
    parser.add_argument("--networks", default="",
                        help="comma-separated networks to keep, as the tables name them: LSTM,GRU,RNN,4-layer bi-LSTM")
    parser.add_argument("--shapes", action="append", default=[],
                        help="B,T,I,H of a shape to keep (repeat the option for several), e.g. --shapes 1,1000,8,64")
    parser.add_argument("--no-report", action="store_true", help="do not rewrite benchmarks/RESULTS.md")
    args = parser.parse_args(argv)

    specs = suites.SUITES[args.suite]()
    if args.cells:
        specs = [s for s in specs if s.cell in args.cells.split(",")]
    if args.dtypes:
        specs = [s for s in specs if s.dtype in args.dtypes.split(",")]
    if args.networks:
        specs = [s for s in specs if s.network in args.networks.split(",")]
    if args.shapes:
        keep = {tuple(int(n) for n in shape.split(",")) for shape in args.shapes}
        specs = [s for s in specs if (s.batch, s.steps, s.input_size, s.hidden) in keep]
    families = set(args.families.split(",")) - {""} or None
    env = environment.describe()
    started = time.time()
    command = report.command_line("benchmarks.run", argv)

    def save(results: list[dict[str, Any]]) -> None:
        report.write_json(args.json, {"suite": args.suite, "command": command, "environment": env,
                                      "wall_seconds": time.time() - started, "results": results})

    results = run(specs, reps=args.reps, warmup=args.warmup, min_seconds=args.min_seconds, families=families,
                  after_spec=save)
    save(results)
    text = report.markdown(args.suite, env, results, command)
    if not args.no_report:
        report.write_section(args.suite, text)
    print(report.summary_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
