"""How `RNN` lays out its loop on each backend when the user leaves the choice to it.

Each default below is what the ablations in ``benchmarks/RESULTS.md`` measured on XLA:CPU ("Hot
path": ``python -m benchmarks.hot_path``; "Loop defaults", an interleaved A/B: ``python -m
benchmarks.ab``); on GPU the defaults follow the cuDNN layout (Appleyard, Kocisky & Blunsom
2016, arXiv:1604.01946), and an H100 measured them (``python -m benchmarks.ab --gpu``: hoisted input
GEMM 1.18-1.20x and fused backward 1.10-1.64x faster than the alternatives); TPU follows GPU,
unmeasured. An explicit ``RNN(hoist=..., unroll=..., fused_backward=...)`` always wins over these.
"""

from __future__ import annotations

import jax

# XLA:CPU pays a fixed cost per loop iteration that only shows when a step is a few microseconds:
# at (B=1, H=64) an unroll of 4 saved 14-25% of forward+backward in every run; at 32K-64K
# multiply-adds per step ((1, 128), (4, 64)) it went from 14% faster to 12% slower between runs, and
# at 2M ((32, 128)) it was 3-4% slower, so it stays off from just above 32K.
_CPU_UNROLL = 4
_CPU_UNROLL_MAX_STEP_MACS = 1 << 15

# XLA:GPU runs a while loop's control on the host, a few microseconds per iteration on top of each
# step's kernel launches; on an H100 (benchmarks/RESULTS.md, "Loop defaults" on GPU and the gpu suite)
# an unroll of 8 cut forward+backward by 1-43% at every GPU shape and dtype (by 31-49% at
# (16, 1024, 768, 768) in the A/B), 16 by 3-7% more there, for a longer compile. A forward pass
# alone does better with 4: the LSTM's half-precision forward ran 1.40x slower unrolled 8 than not
# unrolled at (64, 1024, 1024, 1024) and 0.85x unrolled 4 (G1: 0.83x / 0.70x); over the 18 rows of
# the study (LSTM, GRU, Elman x 3 shapes x float32 / float16) 4 took 0.98x the time of 8 (geometric
# mean; from 0.61x to 1.08x), `python -m benchmarks.ab --gpu --only "unroll of the forward"`.
_GPU_UNROLL = 8
_GPU_INFERENCE_UNROLL = 4


def _on_cpu() -> bool:
    return jax.default_backend() == "cpu"


def default_hoist() -> bool:
    """Whether `RNN` runs the input projection for all steps before the loop on this backend.

    On XLA:CPU it does not: reading the projected inputs back step by step inside the fused gate math
    costs more than the small per-step input GEMM, in the forward and the backward pass (forward+backward
    1.08-1.37x slower hoisted for LSTM and GRU, up to 1.26x for Elman, ``python -m benchmarks.ab --only
    "hoisted input projection"``). On GPU / TPU the single big GEMM is the cuDNN layout.
    """
    return not _on_cpu()


def default_unroll(batch: int, recurrent_kernel_size: int | None, *, differentiated: bool = True) -> int:
    """``lax.scan``'s unroll factor for a step of ``batch`` rows times a recurrent kernel of
    ``recurrent_kernel_size`` weights (None when the cell has no dense ``w_hh``): on CPU 4 when a
    step is tiny and the loop is differentiated, else 1; on GPU / TPU 8, or 4 for inference.

    ``differentiated=False`` asks for a forward pass that no gradient goes through (inference):
    on XLA:CPU the unrolled forward loop alone was 1.14-1.36x *slower* at (B=1, H=64) while
    forward+backward was 9-21% faster, so inference keeps the loop rolled there; on an H100 the
    forward pass alone gained most from an unroll of 4 (see ``_GPU_INFERENCE_UNROLL``)."""
    if recurrent_kernel_size is None:
        return 1
    if not _on_cpu():
        return _GPU_UNROLL if differentiated else _GPU_INFERENCE_UNROLL
    if not differentiated:
        return 1
    return _CPU_UNROLL if batch * recurrent_kernel_size <= _CPU_UNROLL_MAX_STEP_MACS else 1


# XLA:CPU's step GEMM (YNNPACK) runs [G·H, K] @ [K, B] faster than [B, K] @ [K, G·H] for 8 to 32
# rows and gates at least 512 wide, and slower for fewer rows, narrower gates or more rows (forward
# passes, the study "feature-major inference loop" of `python -m benchmarks.ab`).
_CPU_FEATURE_MAJOR_BATCH = (8, 32)
_CPU_FEATURE_MAJOR_MIN_GATES = 512


def default_feature_major(batch: int, gate_width: int) -> bool:
    """Whether a forward pass that no gradient goes through runs its loop feature-major
    (`jaxrnn.layers.feature_major`): on XLA:CPU for ``batch`` rows from 8 to 32 and a recurrent kernel
    ``gate_width`` (``G·H``) at least 512 columns wide, where it measured 1.1-1.6x faster (LSTM
    (32,128,128,512) 1.57x, (16,512,64,256) 1.15-1.23x; GRU 1.12-1.29x; Elman H=512 1.08x); it was
    0.64-0.88x at 2 and 4 rows by 512 gates, 0.81x at 32 rows by 128. Never on GPU / TPU (unmeasured)."""
    low, high = _CPU_FEATURE_MAJOR_BATCH
    return _on_cpu() and low <= batch <= high and gate_width >= _CPU_FEATURE_MAJOR_MIN_GATES


def default_fuse_directions() -> bool:
    """Whether `Bidirectional` runs both directions in one scan (where that changes nothing but speed):
    on GPU / TPU, where each loop iteration costs microseconds of launches and loop control and one
    scan halves the iterations (a 4-layer bidirectional LSTM (16, 1024, 768, 768) on an H100: forward
    1.6-1.9x and forward+backward 1.4-1.7x faster); not on XLA:CPU, where it measured no
    consistent gain."""
    return not _on_cpu()


def default_fused_backward() -> bool:
    """Whether `RNN` differentiates with the fused custom VJP (`jaxrnn.layers.fused`) where the cell
    supports it: on every backend. On an H100 it was 1.10-1.64x faster than autodiff; on XLA:CPU,
    since the backward stacks ``dz`` in place of the forward's ``z`` and forms the kernel gradients
    as one GEMM, autodiff took 0.95-1.42x its time at every batch from 32 to 1024 rows and 1.07-3.8x
    from 1 to 16 rows (``python -m benchmarks.ab --only "fused backward"``; before that change autodiff
    won from about 128 rows for GRU and Elman).
    It also keeps autodiff's bfloat16 residual stacks, which XLA:CPU writes whole every step
    (`jaxrnn.layers.stacking`), out of the loop."""
    return True


__all__ = ["default_feature_major", "default_fuse_directions", "default_fused_backward", "default_hoist", "default_unroll"]
