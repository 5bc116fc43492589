"""The CPU recurrence kernel: a float32 LSTM, GRU or Elman layer's T steps in one XLA FFI call.

XLA:CPU runs a scanned step as a while loop of separate kernels (the step's GEMM, the gate math, the
stacking of outputs, the loop's bookkeeping), each dispatched on its own; at the step sizes RNNs have
that dispatch, not arithmetic, is most of the time. `kernels/cpu/recurrence.cc` runs the whole loop
over time in C++ instead, each thread owning a slice of the hidden units with its columns of every
gate packed in its caches (the CPU twin of `jaxrnn.kernels.persistent_lstm`), or, given enough rows,
a slice of the batch with all of the weights, and the backward the same way over the stored
pre-activations, the weight gradients summed over all steps in the same call once every step's
gradient is written. Every function takes
``threads`` (default `default_threads`) and ``by_rows`` (default `default_by_rows`); they change the
time only: the results are the same bit for bit.

The kernel is compiled on first use with the machine's C++ compiler (``$CXX`` or ``c++``,
``-O3 -march=native``) into ``$JAXRNN_KERNEL_CACHE`` (default ``~/.cache/jaxrnn``), keyed by the
source, the compiler and the processor, and registered with `jax.ffi`. Without a compiler it is
simply unavailable (`unavailable_reason` says why) and `jaxrnn.RNN` keeps `lax.scan`.

Usage (what `jaxrnn.RNN` does through `jaxrnn.layers.fused`)::

    from jaxrnn.kernels import cpu_recurrence
    if cpu_recurrence.unavailable_reason() is None:
        hs, c_last, zs, c_prevs = cpu_recurrence.lstm_forward(xs, w_ih, w_hh, b, h0, c0, save=True)
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import jax
import jax.numpy as jnp

from jaxrnn._typing import Array

_SOURCE_DIR = Path(__file__).parent / "cpu"
_SOURCES = ("recurrence.cc", "vmath.h")
_FLAGS = ("-O3", "-march=native", "-std=c++17", "-shared", "-fPIC", "-w")
_TARGETS = {
    "jaxrnn_lstm_forward": "JaxrnnLstmForward",
    "jaxrnn_lstm_backward": "JaxrnnLstmBackward",
    "jaxrnn_elman_forward": "JaxrnnElmanForward",
    "jaxrnn_elman_backward": "JaxrnnElmanBackward",
    "jaxrnn_gru_forward": "JaxrnnGruForward",
    "jaxrnn_gru_backward": "JaxrnnGruBackward",
}
UNITS_PER_BLOCK = 16  # the kernel's vector width: H must be a multiple of it

_lock = threading.Lock()
_state: dict[str, str | None] = {}


def _cpu_signature() -> str:
    """What `-march=native` depends on: the processor's model and feature flags."""
    try:
        text = Path("/proc/cpuinfo").read_text()
        lines = [ln for ln in text.splitlines() if ln.startswith(("model name", "flags"))][:2]
        return "\n".join(lines)
    except OSError:
        return platform.processor() or platform.machine()


def _cache_dir() -> Path:
    root = os.environ.get("JAXRNN_KERNEL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "jaxrnn"
    )
    return Path(root)


def _build() -> Path:
    """Compiles the kernel (once per source, compiler and processor) and returns the library's path."""
    compiler = shutil.which(os.environ.get("CXX", "c++"))
    if compiler is None:
        raise RuntimeError(f"no C++ compiler found (looked for {os.environ.get('CXX', 'c++')!r}; set $CXX)")
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=60).stdout
    digest = hashlib.sha256()
    for part in (*[(_SOURCE_DIR / s).read_bytes() for s in _SOURCES], " ".join(_FLAGS).encode(), version.encode(),
                 _cpu_signature().encode(), jax.ffi.include_dir().encode()):
        digest.update(part)
    target = _cache_dir() / f"recurrence-{digest.hexdigest()[:16]}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # compile to a private name, then rename: concurrent processes (pytest workers) never load a half file
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        cmd = [compiler, *_FLAGS, "-I", str(_SOURCE_DIR), "-I", jax.ffi.include_dir(),
               str(_SOURCE_DIR / "recurrence.cc"), "-o", tmp]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"compiling the CPU kernel failed ({' '.join(cmd)}):\n{done.stderr[-2000:]}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def unavailable_reason() -> str | None:
    """None once the kernel is built and registered (building it on the first call); else why not."""
    with _lock:
        if "reason" not in _state:
            try:
                library = ctypes.cdll.LoadLibrary(str(_build()))
                for name, symbol in _TARGETS.items():
                    jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(library, symbol)), platform="cpu")
                _state["reason"] = None
            except (OSError, RuntimeError, subprocess.SubprocessError, AttributeError) as error:
                _state["reason"] = f"the CPU kernel could not be built: {error}"
        return _state["reason"]


def _require() -> None:
    reason = unavailable_reason()
    if reason is not None:
        raise RuntimeError(reason)


@functools.cache
def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# Each thread gets at least this many multiply-adds a step, else fewer threads: a barrier per step
# costs about a microsecond. On 2 cores an LSTM at B=1, H=64 (16K a step) ran forward+backward in
# 2.3 ms on two threads against 3.0 on one, an Elman layer there (4K) 0.94 against 0.92.
MIN_MACS_PER_THREAD_STEP = 1 << 13

# When threads take whole rows of the batch rather than slices of the hidden units. Split by rows, no
# thread waits for another's h_{t-1}: a step needs no barrier and no data from the other core, but each
# thread reads all of the weights every step instead of 1/n of them. That pays while they stay in a
# core's L2 or serve many rows. On the 2-core EPYC of benchmarks/RESULTS.md (forward | backward, split
# by units -> by rows, minima, ms): Elman (32,128,32,128) 1.06 -> 0.96 | 1.08 -> 0.84, LSTM
# (16,512,64,256) 33.0 -> 30.0 | 29.6 -> 27.2 (1.3 MB of forward weights), (64,128,64,256) 29.8 -> 29.6 |
# 38.5 -> 27.8, (256,64,128,512) 251 -> 230 | 233 -> 188 (5.2 MB, 128 rows a thread). Level at LSTM
# (32,64,128,512) and (64,32,256,1024) (5.2 and 21 MB, 16 and 32 rows); slower with few rows or weights
# far beyond L2: Elman (8,512,64,256) 4.0 -> 5.7 | 3.8 -> 4.9, LSTM (2,512,64,256) 5.9 -> 9.0 | 4.9 -> 7.4,
# (16,128,128,1024) 113 -> 154 | 105 -> 135 (21 MB, 8 rows).
MIN_ROWS_PER_THREAD = 8  # one register tile of the kernel's GEMM
MAX_ROWS_SPLIT_WEIGHT_BYTES = 2 << 20  # weights a thread keeps near (a core's L2 and some)
MIN_ROWS_PER_THREAD_LARGE_WEIGHTS = 64  # rows a thread needs to split by rows with weights beyond that
MAX_FINE_CHUNK_WEIGHT_BYTES = 512 << 10  # the kernel GEMM's panel chunk, read from L2 once per 8-row tile


def default_threads(batch: int, hidden: int, gates: int) -> int:
    """Threads for a layer of `batch` rows, `hidden` units and `gates` gate blocks: every core, as long
    as each thread keeps `MIN_MACS_PER_THREAD_STEP` of work a step and either `MIN_ROWS_PER_THREAD`
    rows (`default_by_rows`) or one 16-unit block."""
    macs = batch * hidden * gates * hidden
    n = max(1, min(cores(), macs // MIN_MACS_PER_THREAD_STEP))
    return int(n if default_by_rows(batch, n, gates * hidden * hidden) else max(1, min(n, hidden // UNITS_PER_BLOCK)))


def default_by_rows(batch: int, threads: int, weights: int) -> bool:
    """Whether `threads` threads split the batch's rows between them (else the hidden units), for a
    pass that multiplies by `weights` float32 weights a step."""
    rows = batch // max(threads, 1)
    if threads < 2 or rows < MIN_ROWS_PER_THREAD:
        return False
    return weights * 4 <= MAX_ROWS_SPLIT_WEIGHT_BYTES or rows >= MIN_ROWS_PER_THREAD_LARGE_WEIGHTS


def row_chunks(batch: int, threads: int, weights: int) -> int:
    """Chunks of rows that `threads` threads split by rows take from a queue, for a pass that multiplies
    by `weights` float32 weights a step. A chunk's recurrence runs over all steps on one thread, so a
    thread that starts late (a parked pool thread took 0.5-4.5 ms to wake in 1 call in 10 here) or loses
    its core for a while leaves its chunks to the others instead of holding up the pass. Chunks of one
    register tile (`MIN_ROWS_PER_THREAD` rows) while the kernel's GEMM streams all the weights for every
    tile anyway (`MAX_FINE_CHUNK_WEIGHT_BYTES`); beyond, one chunk a thread, whose rows share each weight
    read. Always a multiple of `threads`, so that threads that all start in time share the work evenly."""
    threads = max(threads, 1)
    if weights * 4 > MAX_FINE_CHUNK_WEIGHT_BYTES:
        return threads
    return threads * max(1, batch // (threads * MIN_ROWS_PER_THREAD))


def _split(batch: int, hidden: int, gates: int, threads: int | None, by_rows: bool | None, weights: int) -> tuple[int, int]:
    """``(threads, row_chunks)`` for one pass of the kernel; row_chunks 0 splits it by units."""
    threads = default_threads(batch, hidden, gates) if threads is None else threads
    by_rows = default_by_rows(batch, threads, weights) if by_rows is None else by_rows
    return threads, row_chunks(batch, threads, weights) if by_rows else 0


def _empty() -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct((0,), jnp.float32)


def _like(shape: tuple[int, ...]) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(shape, jnp.float32)


def _bias(b: Array | None, size: int) -> Array:
    return jnp.zeros(size, jnp.float32) if b is None else b


def lstm_forward(
    xs: Array, w_ih: Array, w_hh: Array, b: Array | None, h0: Array, c0: Array, *, reverse: bool = False,
    save: bool = False, threads: int | None = None, by_rows: bool | None = None,
) -> tuple[Array, Array, Array | None, Array | None]:
    """``(hs [T, B, H], c_last [B, H], zs, c_prevs)`` of the LSTM over time-major `xs` ``[T, B, I]``,
    each step ``z_t = [x_t, h_{t-1}] [w_ih; w_hh] + b`` (one GEMM, the input projection included);
    with `save` also each step's pre-activations ``zs`` ``[T, B, 4H]`` and the cell state it started
    from ``c_prevs`` (else None). `reverse` runs from the last step to the first."""
    _require()
    T, B, _ = xs.shape
    H = w_hh.shape[0]
    threads, chunks = _split(B, H, 4, threads, by_rows, w_ih.size + w_hh.size)
    outs = (_like((T, B, H)), _like((B, H)), _like((T, B, 4 * H)) if save else _empty(), _like((T, B, H)) if save else _empty())
    call = jax.ffi.ffi_call("jaxrnn_lstm_forward", outs, vmap_method="sequential")
    hs, c_last, zs, c_prevs = call(xs, w_ih, w_hh, _bias(b, 4 * H), h0, c0, reverse=reverse, threads=threads, row_chunks=chunks)
    return hs, c_last, (zs if save else None), (c_prevs if save else None)


def _weight_gradient_shapes(xs: Array, w_hh: Array) -> tuple[jax.ShapeDtypeStruct, ...]:
    """The shapes of ``(dw_ih, dw_hh, db)`` a backward call returns."""
    H, WH = w_hh.shape
    return _like((xs.shape[2], WH)), _like((H, WH)), _like((WH,))


def lstm_backward(
    xs: Array, hs: Array, h0: Array, zs: Array, c_prevs: Array, dys: Array, dh_last: Array, dc_last: Array,
    w_hh: Array, *, reverse: bool = False, threads: int | None = None, by_rows: bool | None = None,
) -> tuple[Array, Array, Array, Array, Array, Array]:
    """``(dzs, dh0, dc0, dw_ih, dw_hh, db)``: the loss's gradient w.r.t. each step's pre-activations,
    the initial carry and the weights, from the forward's inputs `xs`, outputs `hs`, initial hidden
    state `h0`, `zs` and `c_prevs`, the outputs' cotangents `dys` ``[T, B, H]`` and the final carry's
    ``(dh_last, dc_last)``. The weight gradients ``[X, H_prev]^T dZ`` and ``db`` (dZ summed over steps
    and rows) are computed in the same call, once every ``dz_t`` is written, by the same threads."""
    _require()
    T, B, G = zs.shape
    H = w_hh.shape[0]
    threads, chunks = _split(B, H, 4, threads, by_rows, w_hh.size)
    outs = (_like((T, B, G)), _like((B, H)), _like((B, H)), *_weight_gradient_shapes(xs, w_hh))
    call = jax.ffi.ffi_call("jaxrnn_lstm_backward", outs, vmap_method="sequential")
    return call(xs, hs, h0, zs, c_prevs, dys, dh_last, dc_last, w_hh, reverse=reverse, threads=threads, row_chunks=chunks)


def elman_forward(
    xs: Array, w_ih: Array, w_hh: Array, b: Array | None, h0: Array, *, activation: str = "tanh",
    reverse: bool = False, save: bool = False, threads: int | None = None, by_rows: bool | None = None,
) -> tuple[Array, Array | None]:
    """``(hs [T, B, H], zs)`` of the Elman recurrence ``h_t = act([x_t, h_{t-1}] [w_ih; w_hh] + b)``
    over time-major `xs`; ``zs`` (the pre-activations) only with `save`, else None. `activation`:
    ``"tanh"`` or ``"relu"``."""
    _require()
    T, B, _ = xs.shape
    H = w_hh.shape[0]
    threads, chunks = _split(B, H, 1, threads, by_rows, w_ih.size + w_hh.size)
    outs = (_like((T, B, H)), _like((T, B, H)) if save else _empty())
    call = jax.ffi.ffi_call("jaxrnn_elman_forward", outs, vmap_method="sequential")
    hs, zs = call(xs, w_ih, w_hh, _bias(b, H), h0, reverse=reverse, threads=threads, relu=activation == "relu", row_chunks=chunks)
    return hs, (zs if save else None)


def elman_backward(
    xs: Array, hs: Array, h0: Array, zs: Array, dys: Array, dh_last: Array, w_hh: Array, *, activation: str = "tanh",
    reverse: bool = False, threads: int | None = None, by_rows: bool | None = None,
) -> tuple[Array, Array, Array, Array, Array]:
    """``(dzs, dh0, dw_ih, dw_hh, db)`` of the Elman recurrence, from the forward's inputs `xs`, outputs
    `hs`, initial state `h0` and `zs`, and the cotangents of the outputs `dys` and of the final carry
    `dh_last` (the weight gradients as in `lstm_backward`)."""
    _require()
    T, B, H = zs.shape
    threads, chunks = _split(B, H, 1, threads, by_rows, w_hh.size)
    outs = (_like((T, B, H)), _like((B, H)), *_weight_gradient_shapes(xs, w_hh))
    call = jax.ffi.ffi_call("jaxrnn_elman_backward", outs, vmap_method="sequential")
    return call(xs, hs, h0, zs, dys, dh_last, w_hh, reverse=reverse, threads=threads, relu=activation == "relu", row_chunks=chunks)


def gru_forward(
    xs: Array, w_ih: Array, w_hh: Array, b: Array | None, b_hn: Array | None, h0: Array, *, reverse: bool = False,
    save: bool = False, threads: int | None = None, by_rows: bool | None = None,
) -> tuple[Array, Array | None]:
    """``(hs [T, B, H], zs)`` of the GRU in PyTorch's form over time-major `xs` ``[T, B, I]``::

        r, z = sigmoid(x_t w_ih[:, :2H] + b[:2H] + h_{t-1} w_hh[:, :2H])
        n = tanh(x_t w_ih[:, 2H:] + b[2H:] + r * (h_{t-1} w_hh[:, 2H:] + b_hn))
        h_t = n + z * (h_{t-1} - n)

    With `save` also each step's pre-activations ``zs`` ``[T, B, 4H]``: ``[a_r | a_z | x-half of n |
    h-half of n]`` (else None)."""
    _require()
    T, B, _ = xs.shape
    H = w_hh.shape[0]
    threads, chunks = _split(B, H, 3, threads, by_rows, w_ih.size + w_hh.size)
    outs = (_like((T, B, H)), _like((T, B, 4 * H)) if save else _empty())
    call = jax.ffi.ffi_call("jaxrnn_gru_forward", outs, vmap_method="sequential")
    hs, zs = call(xs, w_ih, w_hh, _bias(b, 3 * H), _bias(b_hn, H), h0, reverse=reverse, threads=threads, row_chunks=chunks)
    return hs, (zs if save else None)


def gru_backward(
    xs: Array, hs: Array, h0: Array, zs: Array, dys: Array, dh_last: Array, w_hh: Array, *, reverse: bool = False,
    threads: int | None = None, by_rows: bool | None = None,
) -> tuple[Array, Array, Array, Array, Array, Array, Array]:
    """``(dus, dhhs, dh0, dw_ih, dw_hh, db, db_hh)`` of the GRU recurrence, from the forward's inputs
    `xs`, outputs `hs`, initial state `h0` and `zs`, and the cotangents of the outputs `dys` and of the
    final carry `dh_last`: ``dus = [da_r | da_z | da_n]`` ``[T, B, 3H]`` the gradient of ``x w_ih + b``,
    ``dhhs = [da_r | da_z | r * da_n]`` that of ``h w_hh``; ``dw_ih = X^T dU``, ``dw_hh = H_prev^T dHH``,
    ``db`` and ``db_hh`` ``[3H]`` the sums of ``dus`` and ``dhhs`` over steps and rows (``b_hn``'s
    gradient is the last block of ``db_hh``)."""
    _require()
    T, B, _ = zs.shape
    H = w_hh.shape[0]
    threads, chunks = _split(B, H, 3, threads, by_rows, w_hh.size)
    outs = (_like((T, B, 3 * H)), _like((T, B, 3 * H)), _like((B, H)), *_weight_gradient_shapes(xs, w_hh), _like((3 * H,)))
    call = jax.ffi.ffi_call("jaxrnn_gru_backward", outs, vmap_method="sequential")
    return call(xs, hs, h0, zs, dys, dh_last, w_hh, reverse=reverse, threads=threads, row_chunks=chunks)


__all__ = [
    "MIN_MACS_PER_THREAD_STEP",
    "MAX_ROWS_SPLIT_WEIGHT_BYTES",
    "MIN_ROWS_PER_THREAD",
    "MIN_ROWS_PER_THREAD_LARGE_WEIGHTS",
    "MAX_FINE_CHUNK_WEIGHT_BYTES",
    "UNITS_PER_BLOCK",
    "cores",
    "default_by_rows",
    "row_chunks",
    "default_threads",
    "elman_backward",
    "elman_forward",
    "gru_backward",
    "gru_forward",
    "lstm_backward",
    "lstm_forward",
    "unavailable_reason",
]
