"""Next-frame prediction of moving shapes with a ConvLSTM, against copying the last frame.

Each sequence shows one or two shapes (square, disk or cross) gliding one pixel per frame in a
random diagonal or straight direction and bouncing off the borders, drawn as binary frames
(generated here, no download). A `jaxrnn.ConvLSTM` (Shi et al. 2015) reads the frames one by one
and a 1x1 readout turns its hidden channels into per-pixel logits for the next frame, trained with
binary cross-entropy under teacher forcing. Motion can only be inferred from two frames or more,
so the metrics are over predictions made after the second frame: the mean squared error of the
predicted pixel probabilities, against the copy-last-frame baseline (which is wrong exactly where
a shape moved). Frames (truth / ConvLSTM / copy-last) are saved as PNG.

    python examples/convlstm_moving_shapes.py --out runs/convlstm
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

import jaxrnn  # noqa: E402

KINDS = ("square", "disk", "cross")


def shape_mask(kind: str, radius: int, centre: np.ndarray, size: int) -> np.ndarray:
    """Boolean [size, size] image of one shape of half-width `radius` centred at integer `centre`."""
    yy, xx = np.mgrid[:size, :size]
    dy, dx = yy - centre[0], xx - centre[1]
    if kind == "square":
        return (np.abs(dy) <= radius) & (np.abs(dx) <= radius)
    if kind == "disk":
        return dy**2 + dx**2 <= radius**2
    return ((np.abs(dy) <= radius) & (np.abs(dx) <= 0)) | ((np.abs(dx) <= radius) & (np.abs(dy) <= 0))


def make_data(
    n: int, num_frames: int, size: int, rng: np.random.Generator, shapes: tuple[int, int] = (1, 2)
) -> np.ndarray:
    """Binary frames [n, num_frames, size, size] of `shapes[0]`..`shapes[1]` shapes moving 1 px/frame
    (straight or diagonal), each reversing a velocity component where it would leave the frame."""
    frames = np.zeros((n, num_frames, size, size), np.float32)
    for i in range(n):
        for _ in range(rng.integers(shapes[0], shapes[1] + 1)):
            kind, radius = KINDS[rng.integers(len(KINDS))], int(rng.integers(1, 3))
            lo, hi = radius, size - 1 - radius
            pos = rng.integers(lo, hi + 1, 2)
            vel = np.zeros(2, int)
            while not vel.any():
                vel = rng.integers(-1, 2, 2)
            for t in range(num_frames):
                frames[i, t] = np.maximum(frames[i, t], shape_mask(kind, radius, pos, size))
                for ax in range(2):  # bounce: reverse the velocity component that would leave the frame
                    if not lo <= pos[ax] + vel[ax] <= hi:
                        vel[ax] = -vel[ax]
                pos = pos + vel
    return frames


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = _common.parser(
        __doc__.splitlines()[0], "runs/convlstm_moving_shapes",
        steps=600, size=16, frames=10, hidden=16, kernel=3, batch=16, n_train=1024, n_test=128, lr=3e-3, seed=0,
    ).parse_args(argv)
    out = _common.out_dir(args.out)
    rng = np.random.default_rng(args.seed)
    train = make_data(args.n_train, args.frames, args.size, rng)
    test = make_data(args.n_test, args.frames, args.size, rng)

    layer = jaxrnn.RNN(jaxrnn.ConvLSTM(args.hidden, kernel_size=(args.kernel, args.kernel)))
    k_rnn, k_out = jax.random.split(jax.random.key(args.seed))
    params = {
        "rnn": layer.init(k_rnn, input_size=1),
        "out": {"w": jax.random.normal(k_out, (args.hidden, 1)) / np.sqrt(args.hidden), "b": jnp.full((1,), -2.0)},
    }

    def next_frame_logits(params, frames):  # [B, T, S, S] -> logits of frames 1..T at steps 0..T-1
        hs, _ = layer.apply(params["rnn"], frames[..., None])  # [B, T, S, S, hidden]
        return (hs @ params["out"]["w"] + params["out"]["b"])[..., 0]

    def loss(params, frames):
        logits = next_frame_logits(params, frames)[:, :-1]
        target = frames[:, 1:]
        return jnp.mean(jnp.logaddexp(0.0, logits) - target * logits)  # binary cross-entropy

    def batches():
        while True:
            yield (jnp.asarray(train[rng.integers(0, args.n_train, args.batch)]),)

    print(f"ConvLSTM({args.hidden}, {args.kernel}x{args.kernel}) on {args.size}x{args.size} frames, "
          f"{args.frames} per sequence; {args.steps} steps of batch {args.batch}")
    params, history = _common.fit(loss, params, batches(), args.steps, lr=args.lr, log_every=max(1, args.steps // 6))

    probs = np.asarray(jax.jit(lambda p, f: jax.nn.sigmoid(next_frame_logits(p, f)))(params, jnp.asarray(test)))
    # predictions made after seeing >= 2 frames (t >= 1), of frames 2..T-1
    pred, truth, last = probs[:, 1:-1], test[:, 2:], test[:, 1:-1]
    metrics = {
        "mse_convlstm": float(np.mean((pred - truth) ** 2)),
        "mse_copy_last_frame": float(np.mean((last - truth) ** 2)),
        "mse_empty_frame": float(np.mean(truth**2)),
        "final_train_loss": float(np.mean(history[-20:])),
    }
    print(f"\nnext-frame MSE on {args.n_test} test sequences (frames 2..{args.frames - 1}):")
    print(f"  ConvLSTM        {metrics['mse_convlstm']:.5f}")
    print(f"  copy last frame {metrics['mse_copy_last_frame']:.5f}")
    print(f"  empty frame     {metrics['mse_empty_frame']:.5f}")

    plt = _common.pyplot()
    cols = args.frames - 2
    fig, axes = plt.subplots(3, cols, figsize=(1.3 * cols, 4.2), squeeze=False)
    for row, (name, images) in enumerate((("truth", truth[0]), ("ConvLSTM", pred[0]), ("copy last", last[0]))):
        for t in range(cols):
            ax = axes[row, t]
            ax.imshow(images[t], cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if t == 0:
                ax.set_ylabel(name, fontsize=8)
            if row == 0:
                ax.set_title(f"t={t + 2}", fontsize=8)
    _common.save(fig, out / "frames.png")
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot(*_common.smooth(history))
    ax.set(xlabel="step", ylabel="BCE (25-step mean)", yscale="log", title="training loss")
    _common.save(fig, out / "loss.png")
    return metrics


if __name__ == "__main__":
    main()
