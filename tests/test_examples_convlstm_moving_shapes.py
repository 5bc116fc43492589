"""Smoke test of examples/convlstm_moving_shapes.py at tiny size, plus its data generator and metric."""

from __future__ import annotations

import numpy as np
import pytest

from tests.families_util import load_example


@pytest.fixture(scope="module")
def example():
    return load_example("convlstm_moving_shapes")


def test_a_shape_moves_one_pixel_per_frame_and_bounces(example):
    size, frames = 10, 40
    data = example.make_data(12, frames, size, np.random.default_rng(3), shapes=(1, 1))
    assert set(np.unique(data)) <= {0.0, 1.0}
    bounces = 0
    for seq in data:
        assert len({float(f.sum()) for f in seq}) == 1  # the whole shape stays in the frame
        moves = []
        for a, b in zip(seq[:-1], seq[1:]):  # each frame is the previous one shifted by (dy, dx), |dy|, |dx| <= 1
            shifts = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                      if np.array_equal(np.roll(np.roll(a, dy, 0), dx, 1), b)]
            assert shifts, "consecutive frames must differ by a one-pixel shift"
            moves.append(shifts[0])
        moves = np.array(moves)
        assert np.all(np.abs(moves) == np.abs(moves[0])) and np.abs(moves[0]).sum() > 0  # constant speed, moving
        bounces += int(np.sum(moves[1:] != moves[:-1]))  # a component flips sign at a border
    assert bounces > 0


def test_disk_and_cross_masks(example):
    disk = example.shape_mask("disk", 2, np.array([5, 5]), 11)
    assert disk.sum() == 13 and disk[5, 3] and not disk[3, 3]  # lattice points with dy^2 + dx^2 <= 4
    cross = example.shape_mask("cross", 2, np.array([5, 5]), 11)
    assert cross.sum() == 9 and cross[3, 5] and cross[5, 7] and not cross[4, 4]


def test_example_runs_at_tiny_size(example, tmp_path):
    argv = ["--out", str(tmp_path), "--steps", "12", "--size", "8", "--frames", "5", "--hidden", "4", "--kernel", "1",
            "--batch", "4", "--n-train", "16", "--n-test", "8", "--lr", "0.02"]
    metrics = example.main(argv)
    # the baseline is what it says: copy frame t to predict t+1, over frames 2..T-1 of the test set
    rng = np.random.default_rng(0)
    example.make_data(16, 5, 8, rng)
    test = example.make_data(8, 5, 8, rng)
    np.testing.assert_allclose(metrics["mse_copy_last_frame"], np.mean((test[:, 1:-1] - test[:, 2:]) ** 2), rtol=1e-6)
    np.testing.assert_allclose(metrics["mse_empty_frame"], np.mean(test[:, 2:] ** 2), rtol=1e-6)
    assert 0.0 < metrics["mse_convlstm"] < 0.25 and np.isfinite(metrics["final_train_loss"])
    for name in ("frames.png", "loss.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
