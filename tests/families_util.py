"""Shared helpers of the cell-family and layer tests (tests/test_cells_*, test_layers_*, test_interop_*)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def random_params(module: Any, input_size: int, seed: int = 0, scale: float = 0.4) -> Any:
    """Parameters with `module.init`'s tree and shapes, every value drawn N(0, scale^2) by NumPy.

    Off the initial values on purpose (zero-initialised peepholes, biases and learned carries must
    count in the comparisons) and without running the initialisers, whose many small eager ops
    cost seconds of compilation on a loaded CPU.
    """
    shapes = jax.eval_shape(lambda: module.init(jax.random.key(0), input_size))
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda s: jnp.asarray(rng.normal(0.0, scale, s.shape).astype(s.dtype)), shapes)


def normal(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """A float32 N(0, 1) array from NumPy (no JAX compilation)."""
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def load_example(name: str) -> Any:
    """Imports ``examples/<name>.py`` (not a package) as a module, so a test can call its ``main(argv)``."""
    path = Path(__file__).resolve().parent.parent / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
