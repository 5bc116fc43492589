"""Interleaved A/B timing of `jaxrnn.RNN` options: the evidence behind `jaxrnn.layers.tuning`.

    python -m benchmarks.ab --json benchmarks/results/ab.json

Differences of 10-20% are what a loop-layout choice is worth on XLA:CPU, and this machine's
run-to-run drift is about as large. So the variants of one case are compiled first and then timed in
turn, one call each per round, and each variant's median is divided by the first variant's median
from the same rounds: drift hits all variants alike. Forward+backward (value_and_grad w.r.t.
parameters and inputs) in float32, unless a study says otherwise (`Study.mode`, `Study.dtypes`).

    python -m benchmarks.ab --gpu --only "forward pass"       # one study
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys
from typing import Any

import jax

from benchmarks import environment, report
from benchmarks.peers import jaxrnn_peer
from benchmarks.peers.common import inputs
from benchmarks.spec import Spec
from benchmarks.timing import block, compile_jax, jax_case_functions, measure_interleaved

@dataclasses.dataclass(frozen=True)
class Study:
    """One question: the variants of `jaxrnn.RNN` options to time against each other at `shapes` (B, T, I, H)."""

    question: str
    shapes: list[tuple[int, int, int, int]]
    variants: list[dict[str, Any]]
    mode: str = "fwdbwd"  # "fwdbwd": value_and_grad w.r.t. params and inputs; "fwd": the forward pass alone
    dtypes: tuple[str, ...] = ("float32",)
    cells: tuple[str, ...] | None = None  # None: every cell asked for on the command line


# What `jaxrnn.layers.tuning` decides on CPU.
STUDIES = [
    Study("unroll for tiny steps", [(1, 1000, 8, 64), (1, 1000, 8, 128), (4, 1000, 8, 64), (32, 128, 32, 128)],
          [{"unroll": 1}, {"unroll": 4}]),
    Study("fused backward vs autodiff by batch",
          [(32, 128, 128, 512), (64, 64, 128, 512), (128, 64, 128, 256), (256, 64, 128, 512), (512, 32, 128, 512),
           (1024, 16, 64, 128)],
          [{"fused_backward": True}, {"fused_backward": False}]),
    Study("fused backward vs autodiff at small batch",
          [(1, 1000, 8, 64), (1, 1000, 8, 128), (4, 1000, 8, 64), (8, 512, 32, 128), (16, 512, 64, 256)],
          [{"fused_backward": True}, {"fused_backward": False}]),
    Study("hoisted input projection", [(1, 1000, 8, 64), (4, 1000, 8, 64), (32, 128, 32, 128), (16, 512, 64, 256),
                                       (256, 64, 128, 512)],
          [{"hoist": False}, {"hoist": True}]),
    # inside the default's region (8-32 rows, gates >= 512 wide) and around it
    Study("feature-major inference loop (forward)",
          [(2, 256, 64, 512), (4, 512, 64, 128), (4, 256, 64, 512), (8, 256, 64, 128), (8, 256, 64, 512),
           (16, 512, 64, 256), (32, 128, 32, 128), (32, 128, 128, 512), (64, 128, 64, 256), (256, 64, 128, 512)],
          [{"feature_major": False}, {"feature_major": True}], mode="fwd"),
    # jaxrnn.layers.persistent.DEFAULT_CPU_MAX_STEP_MACS: the C++ kernel against the scan
    Study("CPU kernel", [(32, 128, 32, 128), (16, 512, 64, 256), (1, 1000, 8, 64), (256, 64, 128, 512)],
          [{"persistent": False}, {"persistent": True}], cells=("lstm", "gru", "rnn")),
    Study("CPU kernel (forward)", [(32, 128, 32, 128), (16, 512, 64, 256), (1, 1000, 8, 64), (256, 64, 128, 512)],
          [{"persistent": False}, {"persistent": True}], mode="fwd", cells=("lstm", "gru", "rnn")),
]
# The same questions on a GPU, where the cuDNN layout (hoisted input GEMM, fused backward) is the default
# and a loop iteration costs microseconds of launch and host-side loop control.
G1 = (16, 1024, 768, 768)
GPU_UNROLLS = [{"unroll": 1}, {"unroll": 4}, {"unroll": 8}, {"unroll": 16}]
GPU_STUDIES = [
    Study("unroll on GPU", [G1], GPU_UNROLLS),
    Study("fused backward vs autodiff on GPU", [G1, (256, 256, 2048, 2048)], [{"fused_backward": True}, {"fused_backward": False}]),
    Study("hoisted input GEMM on GPU", [G1], [{"hoist": True}, {"hoist": False}]),
    # The gpu suite saw LSTM (64, 1024, 1024, 1024) run its half-precision forward pass 1.4x slower unrolled.
    Study("unroll of the forward pass alone on GPU", [G1, (64, 1024, 1024, 1024), (256, 256, 2048, 2048)],
          GPU_UNROLLS[:3], mode="fwd", dtypes=("float32", "float16")),
]
# Each case is timed for at least `rounds` rounds and about this long: millisecond calls scatter by 2x here.
MIN_SECONDS = 3.0
QUICK_STUDIES = [Study("smoke", [(2, 5, 3, 4)], [{"unroll": 1}, {"unroll": 2}]),
                 Study("smoke, forward", [(2, 5, 3, 4)], [{"unroll": 1}, {"unroll": 2}], mode="fwd")]


def interleaved(spec: Spec, variants: list[dict[str, Any]], *, rounds: int, warmup: int = 2,
                mode: str = "fwdbwd", min_seconds: float = MIN_SECONDS) -> list[float]:
    """Median seconds of each variant's forward+backward (`mode="fwdbwd"`) or forward pass (`"fwd"`),
    timed in alternation."""
    xs = inputs(spec)
    runs = []
    for options in variants:
        layer = jaxrnn_peer.layer_for(spec, **options)
        params = layer.init(jax.random.key(0), spec.input_size)
        functions = jax_case_functions(lambda p, x, layer=layer: layer.apply(p, x)[0], params, xs)
        compiled = compile_jax(functions[mode == "fwdbwd"], params, xs)[0]
        runs.append(lambda compiled=compiled, params=params: block(compiled(params, xs)))
    return [t["median"] for t in measure_interleaved(runs, reps=rounds, warmup=warmup, min_seconds=min_seconds)]


def study(studies: list[Study], cells: list[str], *, rounds: int, min_seconds: float = MIN_SECONDS, log=print,
          after_row=None) -> list[dict]:
    rows = []
    for st in studies:
        for dtype in st.dtypes:
            for shape in st.shapes:
                for cell in cells:
                    if st.cells is not None and cell not in st.cells:
                        continue
                    spec = Spec(cell, *shape, dtype=dtype)
                    medians = interleaved(spec, st.variants, rounds=rounds, mode=st.mode, min_seconds=min_seconds)
                    row = {"question": st.question, "mode": st.mode, "dtype": dtype, "network": cell.upper(),
                           "shape": spec.shape, "variants": st.variants, "medians": medians}
                    log(f"{st.question:36s} {dtype:8s} {row['network']:5s} {row['shape']:28s} " + "  ".join(
                        f"{json.dumps(v)}: {m * 1e3:.2f} ms ({m / medians[0]:.2f})" for v, m in zip(st.variants, medians)))
                    rows.append(row)
                    if after_row is not None:  # a run cut off by a time limit keeps what it had
                        after_row(rows)
    return rows


def markdown(rows: list[dict], env: dict, command: str) -> str:
    lines = [
        f"## Loop defaults — interleaved A/B on {env.get('gpu') or env['cpu_model']}",
        "",
        f"Command: `{command}`. Medians of alternating runs, forward+backward unless the question says "
        "forward; in brackets each variant's time over the first variant's. What `jaxrnn.layers.tuning` picks on this backend follows from "
        "these rows.",
        "",
    ]
    question = None
    for r in rows:
        if r["question"] != question:
            question = r["question"]
            names = [json.dumps(v) for v in r["variants"]]
            lines += ["", f"**{question}**", ""]
            if r.get("command", command) != command:
                lines += [f"Command: `{r['command']}`.", ""]
            lines += ["| network | shape | " + " | ".join(f"`{n}` ms" for n in names) + " |", "|---|---|" + "---|" * len(names)]
        cells = [f"{m * 1e3:.3g} ({m / r['medians'][0]:.2f})" for m in r["medians"]]
        dtype = r.get("dtype", "float32")
        shape = r["shape"] if dtype == "float32" else f"{r['shape']}, {dtype}"
        lines.append(f"| {r['network']} | {shape} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def merge_base(path: pathlib.Path | None, studies: list[Study]) -> tuple[list[dict], str | None]:
    """The rows of an earlier run in `path` whose questions are not among `studies`, and its command."""
    if path is None or not path.exists():
        return [], None
    earlier = json.loads(path.read_text())
    rerun = {st.question for st in studies}
    return [row for row in earlier["rows"] if row["question"] not in rerun], earlier.get("command")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=pathlib.Path)
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--cells", default="lstm,gru,rnn")
    parser.add_argument("--quick", action="store_true", help="one tiny case, to check the runner works")
    parser.add_argument("--gpu", action="store_true", help="the GPU studies (G1 = the cuDNN anchor shape)")
    parser.add_argument("--only", default="", help="keep the studies whose question contains this text")
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args(argv)
    env = environment.describe()
    command = report.command_line("benchmarks.ab", argv)

    every = QUICK_STUDIES if args.quick else GPU_STUDIES if args.gpu else STUDIES
    studies = [st for st in every if args.only in st.question]
    # with --only, the other studies' rows already in --json stay (one study can be rerun on its own)
    earlier, earlier_command = merge_base(args.json, studies) if args.only else ([], None)
    header_command = earlier_command if earlier else command  # rows of other commands name theirs

    def save(rows: list[dict]) -> list[dict]:
        for row in rows:
            row.setdefault("command", command)
        merged = sorted(earlier + rows, key=lambda r: [st.question for st in every].index(r["question"]))
        report.write_json(args.json, {"environment": env, "command": header_command, "rows": merged})
        return merged

    rows = study(studies, args.cells.split(","), rounds=args.rounds, min_seconds=0.0 if args.quick else MIN_SECONDS, after_row=save)
    rows = save(rows)
    if not args.no_report:
        report.write_section("loop-defaults-gpu" if args.gpu else "loop-defaults", markdown(rows, env, header_command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
