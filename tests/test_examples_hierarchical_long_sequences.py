"""Smoke test of examples/hierarchical_long_sequences.py at tiny size, plus its adding-problem data."""

from __future__ import annotations

import numpy as np
import pytest

from tests.families_util import load_example


@pytest.fixture(scope="module")
def example():
    return load_example("hierarchical_long_sequences")


def test_adding_problem_data(example):
    xs, targets = example.make_data(200, 50, np.random.default_rng(1))
    values, markers = xs[..., 0], xs[..., 1]
    assert xs.shape == (200, 50, 2) and targets.shape == (200, 1)
    np.testing.assert_array_equal(markers[:, :25].sum(1), 1.0)  # one marker in each half
    np.testing.assert_array_equal(markers[:, 25:].sum(1), 1.0)
    assert values.min() >= 0.0 and values.max() < 1.0
    for i in range(5):
        np.testing.assert_allclose(targets[i, 0], values[i][markers[i] == 1].sum(), rtol=1e-6)


def test_example_runs_at_tiny_size(example, tmp_path):
    argv = ["--out", str(tmp_path), "--steps", "6", "--length", "24", "--chunk", "4", "--hidden", "4",
            "--batch", "8", "--n-train", "32", "--n-test", "16"]
    metrics = example.main(argv)
    rng = np.random.default_rng(0)
    example.make_data(32, 24, rng)
    _, targets = example.make_data(16, 24, rng)
    np.testing.assert_allclose(metrics["mse_predict_mean"], np.mean((targets - 1.0) ** 2), rtol=1e-6)
    for name in ("flat", "hierarchical"):
        assert 0.0 <= metrics[f"accuracy_{name}"] <= 1.0 and np.isfinite(metrics[f"mse_{name}"])
        assert metrics[f"train_seconds_{name}"] > 0 and metrics[f"predict_seconds_{name}"] > 0
    assert (tmp_path / "training.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
