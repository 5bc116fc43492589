"""The PNG plots draw exactly the numbers they are given (read back from the matplotlib artists)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("matplotlib")

from jaxrnn.diagnostics import TemporalGradNorms, plot_loss_curves, plot_profile_heatmap, plot_temporal_norms

PNG = b"\x89PNG\r\n\x1a\n"


def test_temporal_norms_plot_lines_and_log_scale(tmp_path):
    t = np.arange(20)
    a = 10.0 ** (-0.5 * (19 - t))
    # A profile whose norms underflow float32 (1e-60): plotted from its log10 field, in float64.
    logs = jnp.asarray(-3.0 * (19 - t), jnp.float32)
    prof = TemporalGradNorms(hidden=jnp.zeros(20), inputs=jnp.zeros(20), log10_hidden=logs, log10_inputs=logs, loss=jnp.zeros(()))
    fig = plot_temporal_norms({"A": a, "tiny": prof}, path=tmp_path / "p.png", title="profiles")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and ax.get_title() == "profiles"
    lines = {line.get_label(): line for line in ax.get_lines()}
    np.testing.assert_allclose(lines["A"].get_ydata(), a, rtol=1e-12)
    np.testing.assert_allclose(np.log10(lines["tiny"].get_ydata()), np.asarray(logs, np.float64), rtol=1e-12)
    assert lines["tiny"].get_ydata()[0] == pytest.approx(1e-57, rel=1e-5)
    assert (tmp_path / "p.png").read_bytes()[:8] == PNG


def test_heatmap_holds_log10_profiles(tmp_path):
    steps = np.array([0, 10, 20])
    norms = 10.0 ** -np.arange(15).reshape(3, 5).astype(float)
    fig = plot_profile_heatmap(steps, norms, path=tmp_path / "h.png", title="heat")
    image = fig.axes[0].get_images()[0]
    np.testing.assert_allclose(image.get_array(), np.log10(norms))
    assert image.get_extent()[2:] == [0.0, 20.0]
    fig2 = plot_profile_heatmap(steps, np.log10(norms), log10=True, vmin=-20.0, vmax=0.0)
    assert fig2.axes[0].get_images()[0].get_clim() == (-20.0, 0.0)
    assert (tmp_path / "h.png").read_bytes()[:8] == PNG
    with pytest.raises(ValueError, match="'profiles'"):
        plot_profile_heatmap(steps, norms[:2])


def test_loss_curves_with_held_out_and_baseline(tmp_path):
    fig = plot_loss_curves(
        {"lstm": ([1, 2, 3], [0.3, 0.1, 0.01])},
        held_out={"lstm": ([2, 3], [0.2, 0.02])},
        baseline=1 / 6,
        path=tmp_path / "l.png",
    )
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    np.testing.assert_allclose(lines["lstm"].get_ydata(), [0.3, 0.1, 0.01])
    np.testing.assert_allclose(lines["lstm (held out)"].get_xdata(), [2, 3])
    np.testing.assert_allclose(lines["lstm (held out)"].get_ydata(), [0.2, 0.02])
    assert lines["lstm (held out)"].get_color() == lines["lstm"].get_color()
    np.testing.assert_allclose(lines["baseline"].get_ydata(), [1 / 6, 1 / 6])
    assert (tmp_path / "l.png").read_bytes()[:8] == PNG
