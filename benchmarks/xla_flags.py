"""What XLA:GPU's flags do to jaxrnn's per-step floor: command buffers (CUDA graphs) around the loop.

    python -m benchmarks.xla_flags --json benchmarks/results/xla_flags_gpu.json

On a GPU a `lax.scan` step is a few small kernels launched from the host, and at the cuDNN anchor
shape (LSTM 16,1024,768,768) that launch cost, not arithmetic, sets the time (RESULTS.md, "Targets on
GPU"). XLA can record kernels into CUDA graphs ("command buffers"); with WHILE / CONDITIONAL in the
list the whole loop becomes one graph that the device runs without the host. XLA_FLAGS is read once
per process, so each flag set runs in a child process; a library cannot set flags for its users, so
this study tells users which to set, it does not change a default. The optimised HLO of each compiled
program is kept (``--hlo-dir``) to count the kernels in a step.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys

FLAG_SETS = {
    "XLA default": "",
    "no command buffers": "--xla_gpu_enable_command_buffer=",
    "+WHILE,CONDITIONAL": "--xla_gpu_enable_command_buffer=FUSION,CUBLAS,CUBLASLT,CUSTOM_CALL,CUDNN,WHILE,CONDITIONAL",
    "+WHILE,CONDITIONAL, min graph 1": "--xla_gpu_enable_command_buffer=FUSION,CUBLAS,CUBLASLT,CUSTOM_CALL,CUDNN,WHILE,CONDITIONAL"
                                       " --xla_gpu_graph_min_graph_size=1",
}
CASES = [("lstm", (16, 1024, 768, 768), "float16"), ("lstm", (16, 1024, 768, 768), "float32"),
         ("rnn", (64, 1024, 1024, 1024), "float16")]
QUICK_CASES = [("lstm", (2, 8, 4, 8), "float32")]  # checks the plumbing, never for numbers


def child(rounds: int, hlo_dir: str | None, label: str, quick: bool) -> None:
    """Times the CASES in this process (whose XLA_FLAGS the parent set) and prints one JSON line."""
    import jax

    from benchmarks.peers import jaxrnn_peer
    from benchmarks.peers.common import inputs
    from benchmarks.spec import Spec
    from benchmarks.timing import block, compile_jax, jax_case_functions, measure_interleaved

    out = []
    for cell, shape, dtype in QUICK_CASES if quick else CASES:
        spec = Spec(cell, *shape, dtype=dtype)
        xs = inputs(spec)
        layer = jaxrnn_peer.layer_for(spec)
        params = layer.init(jax.random.key(0), spec.input_size)
        runs = []
        for mode, fn in zip(("fwd", "fwdbwd"), jax_case_functions(lambda p, x: layer.apply(p, x)[0], params, xs)):
            compiled = compile_jax(fn, params, xs)[0]
            if hlo_dir:
                name = f"{label}_{cell}_{dtype}_{mode}".replace(" ", "_").replace(",", "").replace("+", "plus")
                pathlib.Path(hlo_dir, name + ".hlo").write_text(compiled.as_text())
            runs.append(lambda compiled=compiled: block(compiled(params, xs)))
        fwd, fb = measure_interleaved(runs, reps=rounds, warmup=2, min_seconds=0.0 if quick else 2.0)
        out.append({"network": cell.upper(), "shape": spec.shape, "dtype": dtype,
                    "fwd_ms": fwd["median"] * 1e3, "fwdbwd_ms": fb["median"] * 1e3})
    print("RESULT " + json.dumps(out))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=pathlib.Path)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--hlo-dir")
    parser.add_argument("--quick", action="store_true", help="a tiny case, to check the runner works")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        child(args.rounds, args.hlo_dir, args.child, args.quick)
        return 0
    from benchmarks import environment, report

    if args.hlo_dir:
        pathlib.Path(args.hlo_dir).mkdir(parents=True, exist_ok=True)
    rows = []
    for label, flags in FLAG_SETS.items():
        env = dict(os.environ, XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") + " " + flags).strip())
        cmd = [sys.executable, "-m", "benchmarks.xla_flags", "--child", label, "--rounds", str(args.rounds)]
        cmd += ["--hlo-dir", args.hlo_dir] if args.hlo_dir else []
        cmd += ["--quick"] if args.quick else []
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode or not lines:
            print(f"{label}: failed (exit {proc.returncode}): {proc.stderr.strip()[-800:]}")
            rows.append({"flags": label, "xla_flags": flags, "error": proc.stderr.strip()[-800:]})
            continue
        for r in json.loads(lines[-1][len("RESULT "):]):
            r.update(flags=label, xla_flags=flags)
            rows.append(r)
            print(f"{label:34s} {r['network']:5s} {r['shape']:28s} {r['dtype']:8s} "
                  f"fwd {r['fwd_ms']:.2f} ms  fwd+bwd {r['fwdbwd_ms']:.2f} ms")
    if args.json:
        report.write_json(args.json, {"environment": environment.describe(),
                                      "command": report.command_line("benchmarks.xla_flags", argv),
                                      "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
