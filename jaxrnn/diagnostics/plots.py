"""PNG plots of gradient profiles and training curves (needs matplotlib: ``pip install "jaxrnn[demo]"``).

Figures are built with `matplotlib.figure.Figure` directly (no pyplot global state, no display needed),
so they work in scripts, tests and on headless machines.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np

from jaxrnn.diagnostics.temporal import TemporalGradNorms


def require_matplotlib() -> None:
    """Raises ImportError with the install command unless matplotlib is importable (check before a long run)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as err:  # pragma: no cover - exercised only without the extra
        raise ImportError('jaxrnn plots need matplotlib: pip install "jaxrnn[demo]"') from err


def _figure(ax: Any, size: tuple[float, float]) -> tuple[Any, Any]:
    require_matplotlib()
    from matplotlib.figure import Figure

    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.add_subplot()


def _save(fig: Any, path: str | os.PathLike | None) -> None:
    if path is not None:
        fig.savefig(os.fspath(path), dpi=120)


def _finish_log_plot(fig: Any, ax: Any, xlabel: str, ylabel: str, title: str | None, path: Any) -> Any:
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    _save(fig, path)
    return fig


def _log10_profile(profile: Any) -> np.ndarray:
    """log10 norms ``[T]`` in float64 from a `TemporalGradNorms` (its log-space field) or from norms."""
    if isinstance(profile, TemporalGradNorms):
        logs = profile.log10_hidden
        if not hasattr(logs, "shape"):
            raise ValueError("plots: a TemporalGradNorms of a Stacked/Bidirectional layer holds several profiles; pass one")
        return np.asarray(logs, np.float64)
    with np.errstate(divide="ignore"):
        return np.log10(np.asarray(profile, np.float64))


def plot_temporal_norms(
    profiles: Mapping[str, Any],
    *,
    ax: Any = None,
    path: str | os.PathLike | None = None,
    title: str | None = None,
    ylabel: str = r"$\|\partial L / \partial h_t\|$",
) -> Any:
    """Gradient norm against time step on a log scale, one line per model.

    Args:
      profiles: ``{label: norms [T]}``; a value may be a `TemporalGradNorms`, whose log-space norms are
        used, so profiles below float32's range still plot.
      ax: an existing matplotlib Axes to draw into (default: a new Figure).
      path: write the figure to this PNG file.
      title: the axes title.
      ylabel: the y-axis label.

    Returns:
      The matplotlib Figure.

    Example::

        plot_temporal_norms({"SimpleRNN": n_rnn, "LSTM": n_lstm}, path="profiles.png")
    """
    fig, ax = _figure(ax, (7.0, 4.2))
    for label, profile in profiles.items():
        logs = _log10_profile(profile)
        ax.plot(np.arange(logs.shape[-1]), 10.0**logs, label=label, lw=1.6)
    return _finish_log_plot(fig, ax, "time step t (the loss reads the last step)", ylabel, title, path)


def plot_profile_heatmap(
    steps: Sequence[int],
    profiles: Any,
    *,
    ax: Any = None,
    path: str | os.PathLike | None = None,
    title: str | None = None,
    log10: bool = False,
    vmin: float | None = None,
    vmax: float | None = None,
) -> Any:
    """Heat map of the temporal gradient profile over training: x = time step t, y = training step.

    Args:
      steps: the training step of each profile, ``[N]``.
      profiles: ``[N, T]`` norms (or log10 norms with ``log10=True``).
      ax, path, title: as in `plot_temporal_norms`.
      log10: `profiles` already holds log10 norms.
      vmin, vmax: the colour range in log10 units (default: the data's finite range); give several
        heat maps the same range to compare them.

    Returns:
      The matplotlib Figure; colour is ``log10 ||dL/dh_t||``.
    """
    logs = np.asarray(profiles, np.float64)
    if not log10:
        with np.errstate(divide="ignore"):
            logs = np.log10(logs)
    steps = np.asarray(steps)
    if logs.ndim != 2 or logs.shape[0] != steps.shape[0]:
        raise ValueError(
            f"plot_profile_heatmap: argument 'profiles' must be [len(steps), T] = [{steps.shape[0]}, T], "
            f"got shape {logs.shape}"
        )
    fig, ax = _figure(ax, (7.0, 4.2))
    finite = logs[np.isfinite(logs)]
    if vmin is None:
        vmin = float(finite.min()) if finite.size else -1.0
    if vmax is None:
        vmax = float(finite.max()) if finite.size else 0.0
    lo_step, hi_step = (float(steps[0]), float(steps[-1])) if steps.size > 1 else (0.0, 1.0)
    image = ax.imshow(
        np.where(np.isfinite(logs), logs, vmin),
        aspect="auto",
        origin="lower",
        interpolation="nearest",
        extent=(-0.5, logs.shape[1] - 0.5, lo_step, hi_step),
        vmin=vmin,
        vmax=vmax,
        cmap="viridis",
    )
    fig.colorbar(image, ax=ax, label=r"$\log_{10}\|\partial L/\partial h_t\|$")
    ax.set_xlabel("time step t")
    ax.set_ylabel("training step")
    if title:
        ax.set_title(title)
    _save(fig, path)
    return fig


def plot_loss_curves(
    curves: Mapping[str, tuple[Sequence[int], Sequence[float]]],
    *,
    held_out: Mapping[str, tuple[Sequence[int], Sequence[float]]] | None = None,
    baseline: float | None = None,
    baseline_label: str = "baseline",
    ax: Any = None,
    path: str | os.PathLike | None = None,
    title: str | None = None,
    ylabel: str = "loss",
) -> Any:
    """Loss against training step (log y), one colour per model, with an optional horizontal baseline.

    Args:
      curves: ``{label: (steps, losses)}``, drawn as solid lines (e.g. the training loss).
      held_out: ``{label: (steps, losses)}`` drawn dashed with markers, in the colour of the curve with
        the same label (e.g. the held-out loss), labelled ``"<label> (held out)"``.
      baseline: draw this value as a dashed black line (e.g. 1/6 for the adding problem).
      baseline_label: its legend entry.
      ax, path, title: as in `plot_temporal_norms`.
      ylabel: the y-axis label.

    Returns:
      The matplotlib Figure.
    """
    fig, ax = _figure(ax, (7.0, 4.2))
    colours: dict[str, Any] = {}
    for label, (steps, losses) in curves.items():
        (line,) = ax.plot(np.asarray(steps), np.asarray(losses, np.float64), label=label, lw=1.4)
        colours[label] = line.get_color()
    for label, (steps, losses) in (held_out or {}).items():
        ax.plot(
            np.asarray(steps), np.asarray(losses, np.float64), ls="--", marker="o", ms=3, lw=1.0,
            color=colours.get(label), label=f"{label} (held out)",
        )
    if baseline is not None:
        ax.axhline(baseline, color="black", ls="--", lw=1.0, label=baseline_label)
    return _finish_log_plot(fig, ax, "training step", ylabel, title, path)
