"""A persistent LSTM recurrence for GPUs, written in Pallas (Triton).

A `lax.scan` runs each time step as a few kernels (a GEMM and a fused pointwise kernel): on an H100
that is ~2.25 kernels and 6 us per step, launch-bound, where cuDNN's persistent fp16 kernel takes
~3 us. This kernel is launched ONCE for all T steps. Each of its ``H / U`` programs (one per streaming
multiprocessor; all must be resident at once) owns ``U`` hidden units: it keeps their cell state and
its ``4U`` columns of ``W_hh`` in registers, and at every step multiplies the whole ``h_{t-1}`` by
those columns (one GEMM per 256-row chunk, the columns packed side by side by the wrapper), adds the
hoisted input projection, applies the gates and writes its ``U`` units of ``h_t``. This is the scheme
of Diamos et al., "Persistent RNNs: stashing recurrent weights on-chip" (ICML 2016) and of cuDNN's
``CUDNN_RNN_ALGO_PERSIST_STATIC`` (Appleyard, Kocisky & Blunsom 2016, arXiv:1604.01946).

Programs wait for each other's ``h_{t-1}`` in one of two ways (`sync`):

* ``"sentinel"``: ``h`` is written into a buffer pre-filled with 2.0, a value no LSTM output takes
  (``|o * tanh(c)| <= 1``), and a program polls each chunk it reads until none of it is 2.0: no
  barrier, no atomics, one L2 round trip. Best for a few rows (H100, (16,1024,768,768) fp16: 4.2 ms
  against 4.3-4.8 ms with the counter).
* ``"counter"``: a grid-wide barrier, a monotonic counter each program adds 1 to after its writes
  (a CTA barrier first, then a release-add) and polls with acquire-reads until it reaches
  ``programs * t``. Best with many rows, where re-reading a whole chunk per poll costs more
  (B=64, H=1024: 10.5 ms against 20 ms with sentinels).

Numerics follow the `lax.scan` path of `jaxrnn.LSTM` step by step: the recurrent product accumulates
in float32 and is rounded to the parameters' dtype, ``z = u + hh`` and ``c_t`` are rounded to it, and
the gate math runs in float32 — float32 results agree to rounding, half-precision ones to an ulp.

A program that waits for more than ~2^20 polls (its peers not resident: more programs than
multiprocessors, or the GPU shared with another process) stops waiting for the rest of the run instead
of hanging the GPU and raises a stall flag: `persistent_lstm` then returns NaN everywhere, and
`jaxrnn.RNN` recomputes the layer with `lax.scan`. `persistent_lstm_fits` says whether a shape can run.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from jaxrnn._typing import Array

try:  # the Triton dialect of Pallas ships with jaxlib, but not on every platform
    from jax.experimental.pallas import triton as plgpu
except ImportError:  # pragma: no cover - jaxlib without Triton support
    plgpu = None

_SPIN_LIMIT = 1 << 20
# Bytes of W_hh columns a program keeps resident: Triton stages them through shared memory, and an
# H100 gives 227 KiB per block (H=768 float32, 192 KiB, ran; H=1024 float32, 256 KiB, did not).
RESIDENT_WEIGHT_BYTES = 192 * 1024
_MIN_DOT = 16  # Triton's smallest tensor-core tile edge


def _largest_power_of_two_dividing(n: int, cap: int) -> int:
    k = 1
    while k * 2 <= cap and n % (k * 2) == 0:
        k *= 2
    return k


def padded_batch(batch: int) -> int:
    """Rows the kernel runs: `batch` padded to a power of two of at least 16 (Triton's smallest GEMM tile)."""
    return max(_MIN_DOT, 1 << (batch - 1).bit_length())


def weights_stay_resident(hidden: int, itemsize: int, block_units: int = 16) -> bool:
    """Whether a program's ``H x 4U`` slice of ``W_hh`` fits `RESIDENT_WEIGHT_BYTES`."""
    return hidden * 4 * block_units * itemsize <= RESIDENT_WEIGHT_BYTES


def persistent_lstm_fits(batch: int, hidden: int, *, block_units: int = 16, processors: int | None = None) -> bool:
    """Whether `persistent_lstm` can run ``(batch, hidden)`` with every program resident at once:
    ``hidden`` a multiple of `block_units` (>= 16) and ``hidden / block_units`` programs no more than the
    device's multiprocessors (`processors`, default: asked of the first device)."""
    if plgpu is None or block_units < _MIN_DOT or hidden % block_units or batch < 1:
        return False
    if processors is None:
        processors = getattr(jax.devices()[0], "core_count", 0) or 0
    return hidden // block_units <= processors


class _CacheGlobal(str):
    """``".cg"`` as Pallas's Triton lowering reads it: it accepts the string ``".cg"`` but then looks
    it up as ``"cg"`` (jax 0.10-0.11), so one string that is both."""

    def __eq__(self, other: object) -> bool:
        return other in (".cg", "cg")

    def __hash__(self) -> int:
        return hash("cg")


_CG = _CacheGlobal("cg")
SENTINEL = 2.0  # never an LSTM output: |o * tanh(c)| <= 1 in every dtype (NaN compares unequal too)


def _kernel(xp_ref, w_ref, h0_ref, c0_ref, _hs_in, _count_in, *refs, steps, hidden, units, chunk, save, resident,
            precision, interpret, sync, prefetch):
    if save:
        hs_ref, c_last_ref, zs_ref, cs_ref, count_ref = refs
    else:
        hs_ref, c_last_ref, count_ref = refs
    dtype = hs_ref.dtype
    j = pl.program_id(0)
    _COUNTER = (jnp.int32(0),)  # noqa: N806 - an array index: the interpreter's atomics want one
    programs = pl.num_programs(0)
    cols = pl.ds(j * 4 * units, 4 * units)  # the wrapper put this program's 4U gate columns side by side
    own = pl.ds(j * units, units)
    chunks = [pl.ds(k * chunk, chunk) for k in range(hidden // chunk)]

    def weight(k):
        return w_ref[chunks[k], cols]

    # loop-invariant: Triton keeps them in registers across all steps (the Persistent-RNN idea)
    kept = [weight(k) for k in range(len(chunks))] if resident else None

    def read_h(t, k):
        view = hs_ref.at[t - 1, :, chunks[k]]
        if interpret:
            return view[...]
        # through to L2 (.cg): an L1 line of another multiprocessor's output could be stale
        return plgpu.load(view, cache_modifier=_CG)

    def wait_counter(t, stalled):
        """Until every program has signalled step t - 1 (its h written)."""
        target = programs * t
        budget = _SPIN_LIMIT * (1 - stalled)  # int32 throughout: `where` with literals mixes i1 / i32 there

        def waiting(state):
            seen, polls = state
            return (seen < target) & (polls < budget)

        def poll(state):
            zero = state[1] - state[1]  # traced: the interpreter's while loop takes no constants
            return plgpu.atomic_add(count_ref, (zero,), zero), state[1] + 1

        seen, _ = jax.lax.while_loop(waiting, poll, (plgpu.atomic_add(count_ref, _COUNTER, jnp.int32(0)), 0))
        if not interpret:
            plgpu.debug_barrier()
        return jnp.maximum(stalled, jnp.minimum(jnp.maximum(target - seen, 0), 1))

    def read_h_when_written(t, k, stalled):
        """Poll the chunk itself until no element holds the sentinel (h_{t-1} slots start filled with it)."""
        budget = _SPIN_LIMIT * (1 - stalled)

        def pending(v):
            return jnp.max((v == SENTINEL).astype(jnp.float32))

        def waiting(state):
            v, polls = state
            return (pending(v) > 0) & (polls < budget)

        def poll(state):
            return read_h(t, k), state[1] + 1

        v, _ = jax.lax.while_loop(waiting, poll, (read_h(t, k), 0))
        return v, jnp.maximum(stalled, pending(v).astype(jnp.int32))

    def load_x(t):
        return xp_ref[t, :, cols]

    def step(t, c, stalled, xts, first):
        if prefetch:  # next step's inputs, loaded while this one waits: HBM latency off the critical path
            xts, next_xts = xts, load_x(jnp.minimum(t + 1, steps - 1))
        else:
            xts = next_xts = load_x(t)
        if not first and sync == "counter":
            stalled = wait_counter(t, stalled)
        acc = None
        for k in range(len(chunks)):
            if first:
                h_chunk = h0_ref[:, chunks[k]]
            elif sync == "sentinel":
                h_chunk, stalled = read_h_when_written(t, k, stalled)
            else:
                h_chunk = read_h(t, k)
            w = kept[k] if resident else weight(k)
            part = jax.lax.dot(h_chunk, w, precision=precision, preferred_element_type=jnp.float32)
            acc = part if acc is None else acc + part
        z = (acc.astype(dtype) + xts).astype(dtype)
        i, f, g_, o = jnp.split(z.astype(jnp.float32), 4, axis=1)
        sig = lambda v: 1.0 / (1.0 + jnp.exp(-v))  # noqa: E731
        c_new = (sig(f) * c + sig(i) * jnp.tanh(g_)).astype(dtype).astype(jnp.float32)
        h_new = (sig(o) * jnp.tanh(c_new)).astype(dtype)
        hs_ref[t, :, own] = h_new
        if save:
            zs_ref[t, :, cols] = z
            cs_ref[t, :, own] = c_new.astype(dtype)
        if sync == "counter":
            # every thread's stores done (CTA barrier), then one release-add per program
            if not interpret:
                plgpu.debug_barrier()
            plgpu.atomic_add(count_ref, _COUNTER, jnp.int32(1))
        return c_new, stalled, next_xts

    state = step(0, c0_ref[:, own].astype(jnp.float32), jnp.int32(0), load_x(0), True)
    c, stalled, _ = jax.lax.fori_loop(1, steps, lambda t, state: step(t, *state, False), state)
    c_last_ref[:, own] = c.astype(dtype)
    # counter [1] flags a stall to the wrapper: programs that started late (not resident) find
    # finished counters or written chunks and return finite garbage
    plgpu.atomic_add(count_ref, (jnp.int32(1),), stalled)


def _swap_column_blocks(a: Array, outer: int, units: int) -> Array:
    """Last-axis columns ``[outer, n, units]`` -> ``[n, outer, units]``."""
    *lead, cols = a.shape
    return a.reshape(*lead, outer, cols // (outer * units), units).swapaxes(-3, -2).reshape(*lead, cols)


@functools.lru_cache(maxsize=None)
def _launcher(kernel, out_shape, programs, num_warps, interpret, sentinels):
    """The pallas_call, batched under `jax.vmap` by a loop (`lax.map`) over the mapped axis: Pallas's
    own batching would add a grid axis, so ``program_id(0)`` would count batch entries and the
    programs of all entries would have to be resident at once."""
    steps, padded, hidden = out_shape[0].shape
    dtype = out_shape[0].dtype
    call = pl.pallas_call(
        kernel,
        out_shape=list(out_shape),
        grid=(programs,),
        # only sentinel polling needs h's buffer pre-filled: a counter barrier skips that memset
        input_output_aliases={4: 0, 5: len(out_shape) - 1} if sentinels else {5: len(out_shape) - 1},
        compiler_params=plgpu.CompilerParams(num_warps=num_warps, num_stages=1),
        interpret=interpret,
    )

    @jax.custom_batching.custom_vmap
    def launch(xp, w_hh, h0, c0):
        hs_init = jnp.full((steps, padded, hidden) if sentinels else (1,), SENTINEL, dtype)
        return call(xp, w_hh, h0, c0, hs_init, jnp.zeros((2,), jnp.int32))

    @launch.def_vmap
    def _one_entry_at_a_time(axis_size, in_batched, *args):
        args = [a if b else jnp.broadcast_to(a, (axis_size, *a.shape)) for a, b in zip(args, in_batched)]
        outs = jax.lax.map(lambda a: launch(*a), args)
        return outs, jax.tree.map(lambda _: True, outs)

    return launch


_OPTIONS = ("save_residuals", "block_units", "num_warps", "resident_weights", "prefetch", "sync", "chunk", "interpret")


@functools.partial(jax.jit, static_argnames=_OPTIONS)
def persistent_lstm_with_status(
    xp: Array,
    w_hh: Array,
    h0: Array,
    c0: Array,
    *,
    save_residuals: bool = False,
    block_units: int = 16,
    num_warps: int = 4,
    resident_weights: bool | None = None,
    prefetch: bool | None = None,
    sync: str | None = None,
    chunk: int = 256,
    interpret: bool = False,
) -> tuple[tuple[Array, ...], Array]:
    """`persistent_lstm`, returning ``(outputs, stalled)``: the outputs as they came out of the kernel and
    a boolean scalar, True if some program gave up waiting (then the outputs are garbage)."""
    steps, batch, gates = xp.shape
    hidden = gates // 4
    if w_hh.shape != (hidden, gates):
        raise ValueError(f"persistent_lstm: argument 'w_hh' must have shape {(hidden, gates)}, got {w_hh.shape}")
    if block_units < _MIN_DOT or hidden % block_units:
        raise ValueError(
            f"persistent_lstm: the hidden size must be a multiple of 'block_units' (>= {_MIN_DOT}), got hidden size "
            f"{hidden} and block_units={block_units}"
        )
    for name, a in (("h0", h0), ("c0", c0)):
        if a.shape != (batch, hidden):
            raise ValueError(f"persistent_lstm: argument '{name}' must have shape {(batch, hidden)}, got {a.shape}")
    padded = padded_batch(batch)
    if sync is None:
        sync = "sentinel" if padded <= _MIN_DOT else "counter"
    if sync not in ("sentinel", "counter"):
        raise ValueError(f"persistent_lstm: argument 'sync' must be 'sentinel' or 'counter', got {sync!r}")
    if resident_weights is None:
        resident_weights = weights_stay_resident(hidden, jnp.dtype(w_hh.dtype).itemsize, block_units)
    if prefetch is None:  # measured: with the weights in registers, prefetching spills (4.9 vs 4.2 ms at G1)
        prefetch = not resident_weights
    dtype = w_hh.dtype
    programs = hidden // block_units
    pad = ((0, padded - batch), (0, 0))
    # gate-major columns [4, P, U] -> program-major [P, 4, U]: each program's 4U columns side by side
    xp = _swap_column_blocks(jnp.pad(xp.astype(dtype), ((0, 0), *pad)), 4, block_units)
    w_hh = _swap_column_blocks(w_hh, 4, block_units)
    precise = dtype == jnp.float32 and str(jax.config.jax_default_matmul_precision) in ("highest", "float32")
    kernel = functools.partial(
        _kernel,
        steps=steps,
        hidden=hidden,
        units=block_units,
        chunk=_largest_power_of_two_dividing(hidden, chunk),
        save=save_residuals,
        resident=resident_weights,
        precision=jax.lax.Precision.HIGHEST if precise else None,
        interpret=interpret,
        sync=sync,
        prefetch=prefetch,
    )
    out_shape = [jax.ShapeDtypeStruct((steps, padded, hidden), dtype), jax.ShapeDtypeStruct((padded, hidden), dtype)]
    if save_residuals:
        out_shape += [jax.ShapeDtypeStruct((steps, padded, gates), dtype), jax.ShapeDtypeStruct((steps, padded, hidden), dtype)]
    out_shape.append(jax.ShapeDtypeStruct((2,), jnp.int32))  # [barrier counter, stall flag]
    launch = _launcher(kernel, tuple(out_shape), programs, num_warps, interpret, sync == "sentinel")
    outs = launch(
        xp,
        w_hh,
        jnp.pad(h0.astype(dtype), pad),
        jnp.pad(c0.astype(dtype), pad),
    )
    *outs, status = outs
    if save_residuals:
        outs[2] = _swap_column_blocks(outs[2], programs, block_units)  # back to gate-major
    return tuple(out[..., :batch, :] for out in outs), status[1] != 0


def persistent_lstm(xp: Array, w_hh: Array, h0: Array, c0: Array, **options) -> tuple[Array, ...]:
    """The LSTM recurrence over hoisted inputs, as one persistent GPU kernel (`jaxrnn.RNN` uses it on
    GPUs for `jaxrnn.LSTM` layers that fit; see the module docstring for the scheme).

    Args:
      xp: ``x_t W_ih + b`` for all steps, time-major ``[T, B, 4H]``, gates ``[i | f | g | o]``.
      w_hh: ``[H, 4H]``; its dtype is the computation's.
      h0, c0: ``[B, H]``.
      save_residuals: also return the pre-activations ``z`` ``[T, B, 4H]`` and the cell states
        ``[T, B, H]``, which the fused backward of `jaxrnn.layers.fused` reads.
      block_units: hidden units per program: ``H / block_units`` programs, all resident at once
        (`persistent_lstm_fits`). Default 16, Triton's smallest GEMM tile.
      num_warps: Triton warps per program (4: 8 and 2 measured slower on an H100).
      resident_weights: keep the program's ``W_hh`` columns on chip for the whole run instead of
        reading them from L2 every step (1.4-1.5x slower on an H100). Default: where they fit
        (`weights_stay_resident`: ``H * 4 * block_units * itemsize`` <= 192 KiB).
      prefetch: load step t+1's inputs during step t (default: only without resident weights).
      sync: ``"sentinel"`` or ``"counter"`` (module docstring); default: sentinels for up to 16 rows.
      chunk: rows of ``W_hh`` per GEMM (a power of two dividing H, at most this; 256 beat 128).
      interpret: run Pallas's interpreter on CPU; only one program can run there (``block_units = H``),
        as the grid runs serially.

    Returns:
      ``(hs [T, B, H], c_T [B, H])``, plus ``(zs, cs)`` with `save_residuals`; all NaN if the programs
      could not all run at once.

    Example::

        xp = jnp.einsum("tbi,ig->tbg", xs, params["w_ih"]) + params["b"]
        hs, c_last = persistent_lstm(xp, params["w_hh"], h0, c0)
    """
    outs, stalled = persistent_lstm_with_status(xp, w_hh, h0, c0, **options)
    return tuple(jnp.where(stalled, jnp.asarray(jnp.nan, out.dtype), out) for out in outs)


__all__ = ["persistent_lstm", "persistent_lstm_fits", "persistent_lstm_with_status", "weights_stay_resident"]
