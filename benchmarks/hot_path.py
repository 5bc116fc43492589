"""The evidence behind jaxrnn's hot-path choices: an ablation and an op-level profile, in one run.

    python -m benchmarks.hot_path --json benchmarks/results/hot_path.json

1. Ablation (LSTM, GRU, Elman at the CPU shapes, forward+backward and forward): jaxrnn's default against
   itself with the fused custom-VJP backward switched off, and with the input projection hoisted out of
   the loop (the cuDNN layout), next to Flax linen and PyTorch in the same run.
2. Profile (LSTM, B=32 T=128 I=32 H=128): per-op device time from ``jax.profiler`` for each variant and
   Flax, which shows where a step's time goes on this backend.
"""

from __future__ import annotations

import argparse
import collections
import glob
import pathlib
import shutil
import sys
import tempfile
from typing import Any

import jax

from benchmarks import environment, report
from benchmarks.peers import flax_peer, jaxrnn_peer, torch_peer
from benchmarks.peers.common import inputs, make_jax_case
from benchmarks.spec import Spec
from benchmarks.suites import CPU_SHAPES
from benchmarks.timing import measure_interleaved

VARIANTS = {
    "jaxrnn (default)": {},
    "jaxrnn, autodiff backward": {"fused_backward": False},
    "jaxrnn, hoisted projection": {"hoist": True},
    "jaxrnn, hoisted + autodiff": {"hoist": True, "fused_backward": False},
}


def _variant_cases(spec: Spec) -> list[Any]:
    xs = inputs(spec)
    cases = []
    for name, options in VARIANTS.items():
        layer = jaxrnn_peer.layer_for(spec, **options)
        params = layer.init(jax.random.key(0), spec.input_size)
        cases.append(make_jax_case(name, lambda p, x, layer=layer: layer.apply(p, x)[0], params, xs))
    return cases


def ablation(specs: list[Spec], *, reps: int, warmup: int, min_seconds: float = 0.0, log=print) -> list[dict]:
    """Each shape's variants and peers timed in turn (`measure_interleaved`), forward then forward+backward,
    so the machine's drift falls on all of them alike."""
    rows = []
    for spec in specs:
        cases = _variant_cases(spec) + flax_peer.build(spec)[:1] + torch_peer.build(spec)
        entries = [{"network": spec.network, "shape": spec.shape, "impl": case.impl} for case in cases]
        for mode, attr in (("fwd", "forward"), ("fwdbwd", "forward_backward")):
            fns = [getattr(case, attr) for case in cases]
            for entry, t in zip(entries, measure_interleaved(fns, reps=reps, warmup=warmup, min_seconds=min_seconds)):
                entry[mode] = t["median"]
        for entry in entries:
            log(f"{spec.network:5s} {spec.shape:28s} {entry['impl']:30s} fwd {entry['fwd'] * 1e3:8.2f}  f+b {entry['fwdbwd'] * 1e3:8.2f} ms")
        rows += entries
    return rows


def profile(spec: Spec, *, runs: int = 10, top: int = 8) -> dict[str, list[tuple[str, float, float]]]:
    """Top ops by device time (ms per call of the whole function, calls per run) for each JAX variant."""
    from jax._src.lib import _profile_data  # the reader of jax.profiler's xplane files

    out = {}
    cases = _variant_cases(spec) + flax_peer.build(spec)[:1]
    for case in cases:
        case.forward_backward()
        directory = tempfile.mkdtemp()
        try:
            with jax.profiler.trace(directory):
                for _ in range(runs):
                    case.forward_backward()
            data = _profile_data.ProfileData.from_file(glob.glob(f"{directory}/**/*.xplane.pb", recursive=True)[0])
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        total: collections.Counter = collections.Counter()
        count: collections.Counter = collections.Counter()
        for plane in data.planes:
            for line in plane.lines:
                if "XLA" not in line.name and "Cpu" not in line.name:
                    continue  # the XLA runtime's threads, not Python
                for event in line.events:
                    total[event.name] += event.duration_ns
                    count[event.name] += 1
        out[case.impl] = [(name, ns / runs / 1e6, count[name] / runs) for name, ns in total.most_common(top)]
    return out


def markdown(rows: list[dict], prof: dict, env: dict, command: str) -> str:
    lines = [
        f"## Hot path — {env.get('gpu') or env['cpu_model']}",
        "",
        f"Command: `{command}`. Medians in ms, one process, each shape's columns timed in turn; lower is better.",
        "",
        "| network | shape | " + " | ".join(f"{v} fwd / f+b" for v in [*VARIANTS, "linen", "torch"]) + " |",
        "|---|---|" + "---|" * (len(VARIANTS) + 2),
    ]
    groups: dict[tuple, dict] = collections.defaultdict(dict)
    for r in rows:
        impl = "linen" if r["impl"].startswith("linen.") else "torch" if r["impl"].startswith("torch.") else r["impl"]
        groups[(r["network"], r["shape"])][impl] = r
    for (network, shape), by in groups.items():
        cells = [f"{by[i]['fwd'] * 1e3:.3g} / {by[i]['fwdbwd'] * 1e3:.3g}" if i in by else "–" for i in [*VARIANTS, "linen", "torch"]]
        lines.append(f"| {network} | {shape} | " + " | ".join(cells) + " |")
    lines += ["", "Op-level profile of forward+backward (LSTM, B=32 T=128 I=32 H=128): ms per call of the whole "
              "function spent in each XLA op (the `while` rows contain the ops inside the loop), calls per call.", ""]
    for impl, ops in prof.items():
        lines += [f"**{impl}**", "", "| op | ms | calls |", "|---|---|---|"]
        lines += [f"| `{name[:60]}` | {ms:.2f} | {calls:.0f} |" for name, ms, calls in ops]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=pathlib.Path)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--min-seconds", type=float, default=3.0, help="time each shape and mode for about this long")
    parser.add_argument("--quick", action="store_true", help="one tiny shape, one rep: checks the script runs")
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args(argv)
    shapes = [(4, 16, 8, 16)] if args.quick else CPU_SHAPES
    specs = [Spec(cell, *shape) for shape in shapes for cell in ("lstm", "gru", "rnn")]
    reps, warmup = (1, 0) if args.quick else (args.reps, args.warmup)
    rows = ablation(specs, reps=reps, warmup=warmup, min_seconds=0.0 if args.quick else args.min_seconds)
    prof = profile(Spec("lstm", *(shapes[0] if args.quick else (32, 128, 32, 128))), runs=2 if args.quick else 10)
    env = environment.describe()
    command = report.command_line("benchmarks.hot_path", argv)
    report.write_json(args.json, {"environment": env, "command": command, "rows": rows, "profile": prof})
    text = markdown(rows, prof, env, command)
    if not args.no_report:
        report.write_section("hot_path", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
