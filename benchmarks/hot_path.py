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
from benchmarks.timing import measure

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


def ablation(specs: list[Spec], *, reps: int, warmup: int, log=print) -> list[dict]:
    rows = []
    for spec in specs:
        cases = _variant_cases(spec) + flax_peer.build(spec)[:1] + torch_peer.build(spec)
        for case in cases:
            entry = {"network": spec.network, "shape": spec.shape, "impl": case.impl}
            for mode, fn in (("fwd", case.forward), ("fwdbwd", case.forward_backward)):
                entry[mode] = measure(fn, reps=reps, warmup=warmup)["median"]
            log(f"{spec.network:5s} {spec.shape:28s} {case.impl:30s} fwd {entry['fwd'] * 1e3:8.2f}  f+b {entry['fwdbwd'] * 1e3:8.2f} ms")
            rows.append(entry)
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
        f"Command: `{command}`. Medians in ms, one process; lower is better.",
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
    parser.add_argument("--quick", action="store_true", help="one tiny shape, one rep: checks the script runs")
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args(argv)
    shapes = [(4, 16, 8, 16)] if args.quick else CPU_SHAPES
    specs = [Spec(cell, *shape) for shape in shapes for cell in ("lstm", "gru", "rnn")]
    reps, warmup = (1, 0) if args.quick else (args.reps, args.warmup)
    rows = ablation(specs, reps=reps, warmup=warmup)
    prof = profile(Spec("lstm", *(shapes[0] if args.quick else (32, 128, 32, 128))), runs=2 if args.quick else 10)
    env = environment.describe()
    command = "python -m benchmarks.hot_path " + " ".join(argv if argv is not None else sys.argv[1:])
    report.write_json(args.json, {"environment": env, "command": command, "rows": rows, "profile": prof})
    text = markdown(rows, prof, env, command)
    if not args.no_report:
        report.write_section("hot_path", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
