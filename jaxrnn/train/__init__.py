"""Training: a jitted train step with gradient diagnostics, `fit` with resumable checkpoints, and
data parallelism over a `jax.sharding.Mesh` (`mesh=` of both)."""

from jaxrnn.train.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint, save_checkpoint
from jaxrnn.train.distributed import data_mesh, replicate, shard_batch
from jaxrnn.train.fit import FitResult, NonFiniteError, fit
from jaxrnn.train.step import Trainer, TrainState, make_train_step

__all__ = [
    "FitResult",
    "NonFiniteError",
    "TrainState",
    "Trainer",
    "data_mesh",
    "fit",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "make_train_step",
    "replicate",
    "save_checkpoint",
    "shard_batch",
]
