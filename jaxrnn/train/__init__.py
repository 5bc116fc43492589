"""Training: a jitted train step with gradient diagnostics, and `fit` with resumable checkpoints."""

from jaxrnn.train.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint, save_checkpoint
from jaxrnn.train.fit import FitResult, NonFiniteError, fit
from jaxrnn.train.step import Trainer, TrainState, make_train_step

__all__ = [
    "FitResult",
    "NonFiniteError",
    "TrainState",
    "Trainer",
    "fit",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "make_train_step",
    "save_checkpoint",
]
