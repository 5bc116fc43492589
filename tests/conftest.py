"""Settings for the whole test session.

XLA:CPU compiles each jitted program through LLVM at -O2, and this suite compiles hundreds of small
programs: most of its time is spent in LLVM, not in running them. At backend optimisation level 0
XLA's own HLO passes still run unchanged (fusion, layouts, buffer assignment: the program's
structure and the memory figures the remat tests read), only LLVM's code generation is lighter.
Measured on the 2-core CI machine: tests/test_fused.py + tests/test_bidirectional.py 3m56s -> 2m17s.
Numerical tests compare with tolerances, so they hold at either level.

On a GPU, XLA runs float32 matmuls as TF32 by default (about 3 decimal digits), while the parity
tests compare with float32 references (PyTorch on CPU, Flax) at float32 tolerances; so off XLA:CPU
the suite asks for full float32 matmuls. XLA:CPU always computes them in full, and is left as is.

Benchmarks never run under these settings. To run the suite fully optimised, set XLA_FLAGS yourself
(e.g. ``XLA_FLAGS=--xla_backend_optimization_level=2 make test``): a value already set wins.
"""

from __future__ import annotations

import os

# Must precede the first JAX backend initialisation, which reads XLA_FLAGS once.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")

import jax  # noqa: E402  (after XLA_FLAGS)

if jax.default_backend() != "cpu":
    jax.config.update("jax_default_matmul_precision", "highest")
