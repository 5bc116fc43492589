"""Parallel-in-time evaluation of recurrences: O(log T) depth instead of T sequential steps.

- `linear_recurrence`, `log_linear_recurrence`, `matrix_recurrence`: ``h_t = A_t h_{t-1} + b_t`` for all
  t by `jax.lax.associative_scan` (diagonal, log-space, dense ``A``).
- `newton_scan`: any nonlinear step evaluated by DEER (Lim et al. 2024) or quasi-DEER (Gonzalez et al.
  2024) Newton iterations, with a sequential fallback and implicit-function-theorem gradients.
- `NewtonInfo`: iterations, convergence and fallback of one evaluation.

Layers use these through ``jaxrnn.RNN(cell, method="parallel" | "deer" | "quasi-deer")``;
``RNN.apply_with_info`` also returns the `NewtonInfo`.
"""

from jaxrnn.parallel.newton import NewtonInfo, default_tol, newton_scan
from jaxrnn.parallel.scan import linear_recurrence, log_linear_recurrence, logaddexp, matrix_recurrence

__all__ = [
    "NewtonInfo",
    "default_tol",
    "linear_recurrence",
    "log_linear_recurrence",
    "logaddexp",
    "matrix_recurrence",
    "newton_scan",
]
