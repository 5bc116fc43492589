"""Gradient-norm diagnostics for recurrent networks: make vanishing / exploding gradients visible.

- `temporal_grad_norms` / `temporal_grad_profile`: ``||dL/dh_t||`` for every step (every layer and
  direction) and ``||dL/dx_t||`` from one backward pass; `vanishing_ratio`, `decay_rate`.
- `jacobian_norms`: spectral norms of ``d carry_t / d carry_{t-1}`` and the largest Lyapunov exponent.
- `param_grad_norms`: per-parameter, per-layer and global gradient norms; update-to-parameter ratios.
- `monitored`: an optax wrapper recording these (and clipping, non-finite flags) inside a jitted step.
- `plot_temporal_norms`, `plot_profile_heatmap`, `plot_loss_curves`: PNGs (needs matplotlib).
- `safe_norm`, `safe_log10_norm`, `tree_norm`: norms that do not underflow in float32.
"""

from jaxrnn.diagnostics.jacobian import JacobianNorms, jacobian_norms
from jaxrnn.diagnostics.norms import safe_log10_norm, safe_norm, tree_norm
from jaxrnn.diagnostics.params import ParamGradNorms, param_grad_norms
from jaxrnn.diagnostics.plots import plot_loss_curves, plot_profile_heatmap, plot_temporal_norms
from jaxrnn.diagnostics.temporal import (
    DEEP_SCALE,
    TemporalGradNorms,
    decay_rate,
    temporal_grad_norms,
    temporal_grad_profile,
    vanishing_ratio,
    zero_probe,
)
from jaxrnn.diagnostics.transform import GradStats, MonitoredState, grad_stats, monitored

__all__ = [
    "DEEP_SCALE",
    "GradStats",
    "JacobianNorms",
    "MonitoredState",
    "ParamGradNorms",
    "TemporalGradNorms",
    "decay_rate",
    "grad_stats",
    "jacobian_norms",
    "monitored",
    "param_grad_norms",
    "plot_loss_curves",
    "plot_profile_heatmap",
    "plot_temporal_norms",
    "safe_log10_norm",
    "safe_norm",
    "temporal_grad_norms",
    "temporal_grad_profile",
    "tree_norm",
    "vanishing_ratio",
    "zero_probe",
]
