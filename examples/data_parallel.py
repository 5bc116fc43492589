"""Data-parallel training on 4 simulated devices: the same `jaxrnn.train.fit`, the batch split across a mesh.

An LSTM learns the adding problem (Hochreiter & Schmidhuber 1997) twice with the same seed, batches
and optimizer: once on one device, once with ``mesh=jaxrnn.train.data_mesh()``, where each batch's rows
are split across the devices, the parameters are replicated and XLA all-reduces the gradients. The
data-parallel run is also stopped half-way and resumed from its checkpoint. The script prints which
rows each device holds, the two loss curves side by side and their differences, and saves
``losses.png`` and ``metrics.json`` to ``--out``.

The losses agree to float rounding (about 1e-7) for the first couple of hundred steps; after that the
rounding differences (the sums over rows happen in another order) are amplified by training, as
they are between any two runs that sum in different orders. A control run shows it: one device with
the rows of every batch reversed (the same mean loss) drifts from the one-device run just as much.

JAX on a CPU sees one device; ``--devices N`` (default 4) sets
``XLA_FLAGS=--xla_force_host_platform_device_count=N`` before JAX is imported, so this runs on any
machine. The simulated devices share the same CPU cores: this shows the mechanics and the numbers,
not a speed-up. With ``--devices 0`` the flag is left alone and the real devices are used (on a
multi-GPU machine: all of its GPUs).

    python examples/data_parallel.py --out runs/data_parallel
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path


def simulate_cpu_devices(argv: list[str]) -> None:
    """Sets the XLA flag for ``--devices`` simulated CPU devices; it only works before JAX is imported."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--devices", type=int, default=4)
    n = pre.parse_known_args(argv)[0].devices
    flags = os.environ.get("XLA_FLAGS", "")
    if n > 0 and "xla_force_host_platform_device_count" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={n}".strip()


if __name__ == "__main__":
    simulate_cpu_devices(sys.argv[1:])

import jax  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

import jaxrnn  # noqa: E402
from jaxrnn.models import SequenceRegressor  # noqa: E402
from jaxrnn.tasks import AddingProblem  # noqa: E402
from jaxrnn.train import data_mesh, fit, shard_batch  # noqa: E402


def _max_diff(a, b) -> float:
    pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b))
    return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)))) for x, y in pairs)


def main(argv: list[str] | None = None) -> dict:
    p = _common.parser(
        __doc__.splitlines()[0], "runs/data_parallel",
        devices=4, steps=400, length=50, hidden=32, batch=64, lr=1e-2, seed=0,
    )
    args = p.parse_args(argv)
    if args.devices > 0 and jax.default_backend() == "cpu" and jax.device_count() != args.devices:
        raise SystemExit(
            f"data_parallel: JAX sees {jax.device_count()} CPU device(s), not --devices {args.devices}: the XLA flag "
            "must be set before JAX is imported. Run this file as a script, or set "
            f"XLA_FLAGS=--xla_force_host_platform_device_count={args.devices} yourself."
        )
    out = _common.out_dir(args.out)
    mesh = data_mesh()
    n = mesh.devices.size
    print(f"{n} devices: {', '.join(str(d) for d in mesh.devices.flat)}; mesh axes {dict(mesh.shape)}")

    task = AddingProblem(args.length)
    model = SequenceRegressor(jaxrnn.RNN(jaxrnn.LSTM(args.hidden)), output_size=1)
    train, held_out = task.stream(args.batch, seed=args.seed), task.stream(args.batch, seed=args.seed + 1)

    batch = shard_batch(train(0), mesh)  # what fit does to every batch
    print(f"\nbatch 0: xs {tuple(batch.xs.shape)}, targets {tuple(batch.targets.shape)}, sharding {batch.xs.sharding.spec}")
    shards = []
    for s in sorted(batch.xs.addressable_shards, key=lambda s: s.device.id):
        rows = s.index[0]
        shards.append({"device": s.device.id, "rows": [rows.start, rows.stop], "shape": list(s.data.shape)})
        print(f"  {s.device}: rows {rows.start:3d}..{rows.stop - 1:3d}, shard shape {tuple(s.data.shape)}")

    kwargs = {"seed": args.seed, "clip_norm": 1.0, "eval_data": held_out, "eval_batches": 2, "progress": False}
    optimizer = optax.adam(args.lr)
    print(f"\nadding problem, T={args.length}, LSTM({args.hidden}), {args.steps} Adam steps (lr {args.lr}, batch "
          f"{args.batch} = {n} x {args.batch // n} rows), clipping at 1.0; baseline MSE {task.baseline:.4f}")
    single = fit(model, task.loss, optimizer, train, steps=args.steps, **kwargs)
    ckpt = out / "checkpoints"
    shutil.rmtree(ckpt, ignore_errors=True)
    half = max(args.steps // 2, 1)
    fit(model, task.loss, optimizer, train, steps=half, mesh=mesh, checkpoint_dir=ckpt, **kwargs)
    sharded = fit(model, task.loss, optimizer, train, steps=args.steps, mesh=mesh, checkpoint_dir=ckpt, **kwargs)
    print(f"(the {n}-device run stopped after step {half} and resumed from {ckpt.name}/)")
    # The control: one device, the rows of every batch in reverse order. The mean loss is the same
    # function; only the order of the floating-point sums changes, as it does when the rows are split.
    reverse = fit(model, task.loss, optimizer, lambda k: jax.tree.map(lambda x: x[::-1], train(k)), steps=args.steps, **kwargs)

    loss_1, loss_n = np.asarray(single.history["loss"]), np.asarray(sharded.history["loss"])
    diff_n, diff_r = np.abs(loss_n - loss_1), np.abs(np.asarray(reverse.history["loss"]) - loss_1)
    print(f"\n{'step':>6} {f'loss, {n} devices':>18} {'loss, 1 device':>16} {f'|{n} dev - 1 dev|':>16} {'|reversed - 1 dev|':>19}")
    every = max(args.steps // 8, 1)
    for step in sorted({*range(every, args.steps + 1, every), args.steps}):
        i = step - 1
        print(f"{step:>6} {loss_n[i]:>18.6f} {loss_1[i]:>16.6f} {diff_n[i]:>16.2e} {diff_r[i]:>19.2e}")

    def agree(diff: np.ndarray) -> int:  # steps from the start over which the losses agree to 1e-5
        return int(np.argmax(diff > 1e-5)) if (diff > 1e-5).any() else len(diff)

    metrics = {
        "devices": n,
        "shards": shards,
        "loss_sharded": loss_n.tolist(),
        "loss_single": loss_1.tolist(),
        "agree_steps_sharded": agree(diff_n),
        "agree_steps_reversed": agree(diff_r),
        "max_loss_diff_sharded": float(diff_n.max()),
        "max_loss_diff_reversed": float(diff_r.max()),
        "max_param_diff_sharded": _max_diff(sharded.params, single.params),
        "max_param_diff_reversed": _max_diff(reverse.params, single.params),
        "eval_sharded": sharded.history["eval_loss"][-1],
        "eval_single": single.history["eval_loss"][-1],
        "eval_reversed": reverse.history["eval_loss"][-1],
        "baseline": task.baseline,
    }
    print(f"\nlosses agree to 1e-5 for the first {metrics['agree_steps_sharded']} steps ({n} devices vs 1) and "
          f"{metrics['agree_steps_reversed']} steps (reversed rows vs 1); largest differences: "
          f"{metrics['max_loss_diff_sharded']:.2e} and {metrics['max_loss_diff_reversed']:.2e}.")
    print("Both runs differ from the one-device run only in the order of floating-point sums; Adam and the "
          "escape from the plateau amplify those rounding differences as training goes on.")
    print(f"held-out MSE: {n} devices {metrics['eval_sharded']:.5f}, 1 device {metrics['eval_single']:.5f}, "
          f"1 device reversed rows {metrics['eval_reversed']:.5f} (baseline {task.baseline:.4f})")

    plt = _common.pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    steps = np.arange(1, args.steps + 1)
    ax1.plot(*_common.smooth(loss_1.tolist()), label="1 device", lw=2.5, alpha=0.6)
    ax1.plot(*_common.smooth(loss_n.tolist()), label=f"{n} devices (resumed at {half})", lw=1, ls="--")
    ax1.axhline(task.baseline, color="grey", lw=0.8, label="baseline 1/6")
    ax1.set(yscale="log", xlabel="step", ylabel="training MSE (running mean)", title="training loss")
    ax1.legend()
    ax2.semilogy(steps, np.maximum(diff_n, 1e-9), ".", ms=3, label=f"{n} devices vs 1")
    ax2.semilogy(steps, np.maximum(diff_r, 1e-9), ".", ms=3, label="1 device, rows reversed, vs 1")
    ax2.set(xlabel="step", ylabel="|loss difference| (0 drawn at 1e-9)", title="rounding, then amplified by training")
    ax2.legend()
    _common.save(fig, out / "losses.png")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    return metrics


if __name__ == "__main__":
    main()
