"""Command line: ``jaxrnn demo`` (the main job) and ``jaxrnn train`` (one configurable run).

Also reachable as ``python -m jaxrnn ...``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from jaxrnn.tasks import TASKS


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _seed(text: str) -> int:
    value = int(text)
    if not 0 <= value < 2**31 - 1_000_003:  # the held-out stream uses seed + 1_000_003
        raise argparse.ArgumentTypeError(f"must be an integer in [0, 2**31 - 1000003), got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from jaxrnn.train.demo import DEMO_DEFAULTS
    from jaxrnn.train.experiment import CELLS, OPTIMIZERS

    parser = argparse.ArgumentParser(prog="jaxrnn", description="jaxrnn: recurrent networks and their gradients in JAX.")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo",
        help="train SimpleRNN, LSTM and GRU on the adding problem; print a table and write PNGs",
        description="Trains SimpleRNN, LSTM and GRU on the adding problem, measures their gradient profiles at "
        "init and after training, prints a table and writes PNG plots to --out.",
    )
    demo.add_argument("--out", default="out/demo", help="output folder for PNGs and results.json (default: out/demo)")
    demo.add_argument("--length", type=_positive_int, default=DEMO_DEFAULTS["length"], help="sequence length T")
    demo.add_argument("--hidden", type=_positive_int, default=DEMO_DEFAULTS["hidden"], help="hidden size H")
    demo.add_argument("--steps", type=_positive_int, default=DEMO_DEFAULTS["steps"], help="training steps per model")
    demo.add_argument("--batch-size", type=_positive_int, default=DEMO_DEFAULTS["batch_size"])
    demo.add_argument("--lr", type=_positive_float, default=DEMO_DEFAULTS["learning_rate"], help="Adam learning rate")
    demo.add_argument("--seed", type=_seed, default=0)
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bars")

    train = sub.add_parser("train", help="train one model on a synthetic task", description="Train one recurrent model.")
    train.add_argument("--cell", choices=sorted(CELLS), default="lstm")
    train.add_argument("--task", choices=sorted(TASKS), default="adding")
    train.add_argument("--length", type=_positive_int, default=100, help="sequence length (adding) or delay (copy)")
    train.add_argument("--hidden", type=_positive_int, default=64)
    train.add_argument("--layers", type=_positive_int, default=1)
    train.add_argument("--steps", type=_positive_int, default=2000)
    train.add_argument("--batch-size", type=_positive_int, default=64)
    train.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="adam")
    train.add_argument("--lr", type=_positive_float, default=1e-3, help="learning rate")
    train.add_argument("--clip", type=_positive_float, default=1.0, help="clip gradients to this global norm")
    train.add_argument("--no-clip", action="store_true", help="do not clip gradients")
    train.add_argument("--chrono", action="store_true", help="chrono-initialise the gate biases (LSTM, GRU)")
    train.add_argument("--checkpoint-dir", default=None, help="write checkpoints here and resume from them")
    train.add_argument("--checkpoint-every", type=_positive_int, default=500)
    train.add_argument("--eval-every", type=_positive_int, default=250)
    train.add_argument("--seed", type=_seed, default=0)
    train.add_argument("--out", default=None, help="write profile / loss PNGs and results.json here")
    train.add_argument("--no-progress", action="store_true")
    return parser


def _train(args: argparse.Namespace) -> int:
    from jaxrnn.diagnostics.plots import require_matplotlib
    from jaxrnn.train.demo import write_plots
    from jaxrnn.train.experiment import format_table, run_experiment

    if args.out:
        require_matplotlib()  # fail now, not after the training run
    task = TASKS[args.task](args.length)
    name = f"{args.cell}{' (chrono)' if args.chrono else ''}"
    print(f"jaxrnn train: {name}, H={args.hidden} x {args.layers} layer(s), task {args.task} (T={task.length}), "
          f"baseline loss {task.baseline:.4f}", flush=True)
    result = run_experiment(
        name,
        task,
        cell=args.cell,
        hidden=args.hidden,
        layers=args.layers,
        steps=args.steps,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        learning_rate=args.lr,
        clip_norm=None if args.no_clip else args.clip,
        chrono=args.chrono,
        seed=args.seed,
        eval_every=args.eval_every,
        profile_every=max(args.steps // 20, 1),
        checkpoint_dir=args.checkpoint_dir,
        checkpoint_every=args.checkpoint_every,
        progress=not args.no_progress,
    )
    print(format_table([result], loss_name="test loss"))
    if args.out:
        out = Path(args.out)
        write_plots(out, [result], {}, task)
        print(f"plots and results.json written to {out.resolve()}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from jaxrnn.train.demo import run_demo

    run_demo(
        args.out,
        length=args.length,
        hidden=args.hidden,
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        seed=args.seed,
        progress=not args.no_progress,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``jaxrnn`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "train" and args.chrono and args.cell == "simple":
        parser.error("--chrono sets gate biases: it needs --cell lstm or gru, not simple")
    try:
        return _demo(args) if args.command == "demo" else _train(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
