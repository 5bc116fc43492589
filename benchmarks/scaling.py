"""How cost grows with work: LSTM forward+backward time and memory vs sequence length T and hidden size H.

    python -m benchmarks.scaling --json benchmarks/results/scaling.json --png benchmarks/scaling.png

jaxrnn (default, and with remat) next to Flax linen `nn.RNN(LSTMCell)`, the same run, medians.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Any

import jax

from benchmarks import environment, report
from benchmarks.peers import flax_peer, jaxrnn_peer
from benchmarks.peers.common import inputs, make_jax_case
from benchmarks.spec import Spec
from benchmarks.timing import measure

STEPS = [128, 256, 512, 1024, 2048, 4096, 8192, 16384]
HIDDEN = [32, 64, 128, 256, 512, 1024]


def _cases(spec: Spec) -> dict[str, Any]:
    cases = {}
    for name, options in (("jaxrnn", {}), ("jaxrnn remat", {"remat": True})):
        layer = jaxrnn_peer.layer_for(spec, **options)
        params = layer.init(jax.random.key(0), spec.input_size)
        cases[name] = make_jax_case(name, lambda p, x, layer=layer: layer.apply(p, x)[0], params, inputs(spec))
    cases["linen.LSTMCell"] = flax_peer.build(spec)[0]
    return cases


def sweep(axis: str, values: list[int], *, batch: int, base: dict[str, int], reps: int, log=print) -> list[dict]:
    rows = []
    for v in values:
        dims = {**base, axis: v}
        spec = Spec("lstm", batch, dims["steps"], dims["input_size"], dims["hidden"])
        for name, case in _cases(spec).items():
            t = measure(case.forward_backward, reps=reps, warmup=1)
            rows.append({"axis": axis, "value": v, "impl": name, "seconds": t["median"], "min": t["min"],
                         "peak_bytes": case.memory_bytes.get("fwdbwd"), "gflop": 3 * spec.flops() / 1e9})
            log(f"{axis}={v:6d} {name:16s} {t['median'] * 1e3:10.1f} ms  peak {rows[-1]['peak_bytes'] / 2**20:8.1f} MiB")
    return rows


def plot(rows: list[dict], path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    for ax, (axis, label) in zip(axes[:2], (("steps", "sequence length T"), ("hidden", "hidden size H"))):
        for impl in sorted({r["impl"] for r in rows}):
            pts = [(r["value"], r["seconds"]) for r in rows if r["axis"] == axis and r["impl"] == impl]
            ax.loglog(*zip(*pts), "o-", label=impl)
        ax.set_xlabel(label)
        ax.set_ylabel("forward+backward seconds (median)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    ax = axes[2]
    for impl in ("jaxrnn", "jaxrnn remat", "linen.LSTMCell"):
        pts = [(r["value"], r["peak_bytes"] / 2**20) for r in rows if r["axis"] == "steps" and r["impl"] == impl]
        ax.loglog(*zip(*pts), "o-", label=impl)
    ax.set_xlabel("sequence length T")
    ax.set_ylabel("XLA peak memory estimate, MiB")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.suptitle("LSTM forward+backward on " + environment.describe().get("gpu", environment.describe()["cpu_model"]))
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def markdown(rows: list[dict], env: dict, command: str, png: str) -> str:
    lines = [f"## Scaling — {env.get('gpu') or env['cpu_model']}", "",
             f"Command: `{command}`. Plot: `{png}`. LSTM, B=16, input 128 (hidden 128 in the steps table, T=256 in "
             "the hidden table), forward+backward w.r.t. params and inputs. Memory is XLA's peak estimate "
             "(arguments + outputs + temporaries), so it includes the inputs and their gradient, which no "
             "remat can drop.", ""]
    for axis in ("steps", "hidden"):
        impls = sorted({r["impl"] for r in rows})
        lines += [f"| {axis} | " + " | ".join(f"{i} ms" for i in impls)
                  + " | jaxrnn MiB | jaxrnn remat MiB | remat / plain memory |",
                  "|---" * (len(impls) + 4) + "|"]
        for v in sorted({r["value"] for r in rows if r["axis"] == axis}):
            by = {r["impl"]: r for r in rows if r["axis"] == axis and r["value"] == v}
            cells = " | ".join(f"{by[i]['seconds'] * 1e3:.1f}" for i in impls)
            mib = lambda i: by[i]["peak_bytes"] / 2**20  # noqa: E731
            share = mib("jaxrnn remat") / mib("jaxrnn")
            lines.append(f"| {v} | {cells} | {mib('jaxrnn'):.1f} | {mib('jaxrnn remat'):.1f} | {share:.0%} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=pathlib.Path)
    parser.add_argument("--png", type=pathlib.Path, default=pathlib.Path(__file__).parent / "scaling.png")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--max-steps", type=int, default=STEPS[-1])
    parser.add_argument("--max-hidden", type=int, default=HIDDEN[-1])
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args(argv)
    base = {"steps": 256, "input_size": 128, "hidden": 128}
    rows = sweep("steps", [t for t in STEPS if t <= args.max_steps], batch=16, base=base, reps=args.reps)
    rows += sweep("hidden", [h for h in HIDDEN if h <= args.max_hidden], batch=16, base=base, reps=args.reps)
    env = environment.describe()
    command = report.command_line("benchmarks.scaling", argv)
    report.write_json(args.json, {"environment": env, "command": command, "rows": rows})
    plot(rows, args.png)
    if not args.no_report:
        report.write_section("scaling", markdown(rows, env, command, args.png.name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
