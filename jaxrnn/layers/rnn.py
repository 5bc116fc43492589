"""`RNN`: one cell scanned over time with `jax.lax.scan`."""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp

from jaxrnn import _checks
from jaxrnn._typing import Array, Carry, Params, PRNGKey
from jaxrnn.cells.base import Cell
from jaxrnn.cells.linear import LinearCell
from jaxrnn.layers import noise, stacking
from jaxrnn.layers.fused import fused_scan, supports_fused
from jaxrnn.layers.persistent import persistent_options
from jaxrnn.layers.feature_major import supports_feature_major
from jaxrnn.layers.tuning import default_feature_major, default_fused_backward, default_hoist, default_unroll
from jaxrnn.masking import where_valid
from jaxrnn.parallel import NewtonInfo
from jaxrnn.parallel.evaluate import METHODS, evaluate


def _finish_step(
    cell: Cell, zone_rates: Any, new_c: Carry, y: Array, c: Carry, ok: Array | None, p: Array | None, zm: Any
) -> tuple[Carry, Array]:
    """What follows the cell's update in every step: zoneout, the diagnostics probe, the lengths mask."""
    if zone_rates is not None:
        new_c = noise.zoneout_update(new_c, c, zone_rates, zm)
        y = cell.hidden(new_c)
    if p is not None:
        new_c, y = cell.with_hidden(new_c, cell.hidden(new_c) + p), y + p
    if ok is not None:
        new_c = jax.tree.map(functools.partial(where_valid, ok), new_c, c)
    return new_c, y


@dataclasses.dataclass(frozen=True)
class RNN:
    """Scans a cell over time: the input projection for all steps as one GEMM, then `lax.scan`.

    Args:
      cell: the cell to scan (e.g. ``jaxrnn.LSTM(128)``).
      reverse: run from the last valid step to the first. With ``lengths`` each sequence starts at
        its own last valid step, and outputs stay at their input positions (padding at the end).
      unroll: ``lax.scan``'s unroll factor (an int >= 1, or True for a full unroll). None picks per
        backend and step size (`jaxrnn.layers.tuning.default_unroll`: 4 on CPU for tiny steps, else 1; 8 on
        GPU / TPU, 4 there for a forward pass no gradient goes through).
      remat: trade compute for memory on long sequences: the forward pass keeps only the carry at
        the boundary of every chunk of k steps (k = sqrt(T) for ``True``, or the int given) and the
        backward pass recomputes one chunk at a time (``jax.checkpoint``); about one extra forward
        pass of compute, O(T/k + k) instead of O(T) activations.
      time_major: inputs are ``[T, *batch, F]`` instead of ``[*batch, T, F]``.
      dropout: variational input dropout (Gal & Ghahramani 2016): one mask per sequence, the same at
        every step, on the input features. Only when `apply` gets a ``key``.
      recurrent_dropout: variational recurrent dropout: one mask per sequence on ``h_{t-1}`` where it
        enters the recurrent kernel; the carry that flows on (e.g. the GRU's ``z * h_{t-1}`` term)
        is not masked, as in Gal & Ghahramani. Only when `apply` gets a ``key``.
      zoneout: zoneout probability (Krueger et al. 2017): with a ``key``, each carry unit keeps its
        previous value with this probability, drawn per step and unit; without a key, the carry is
        the expectation ``p * old + (1 - p) * new``. A float for every carry leaf, or a pytree
        shaped like the carry, e.g. ``jaxrnn.LSTMState(h=0.05, c=0.5)`` (the paper's LSTM setting).
        The output at each step is the zoned-out hidden state.

      fused_backward: for cells whose step is one matmul of ``h_{t-1}`` plus pointwise math (SimpleRNN,
        LSTM without layer norm, GRU ``reset_after``), differentiate with a custom VJP that forms the
        weight gradients as single GEMMs after the backward scan (`jaxrnn.layers.fused`). Same values
        and gradients to float32 round-off, reverse mode to any order; a custom VJP has no forward
        mode, so pass False for ``jax.jvp`` / ``jax.jacfwd`` / forward-over-reverse Hessians. None
        (default) follows `jaxrnn.layers.tuning.default_fused_backward`: on, on every backend, where
        it measured faster than autodiff or within 5% of it at every batch (CPU: autodiff
        took 1.07-3.8x its time from 1 to 16 rows, 0.95-1.42x from 32 to 1024). Other cells (layer-norm LSTM,
        ``GRU(reset_after=False)``, convolutional cells) in bfloat16 on CPU differentiate, unless
        this is False, through `jaxrnn.layers.stacking.scan_recomputing`, whose backward recomputes
        each step from its saved carry: autodiff's bfloat16 stacks are copied whole every step there.
      hoist: compute the input projection for all steps before the loop (one GEMM) rather than
        inside it. None picks per backend (`default_hoist`: off on CPU, where it measured slower).
      feature_major: run a forward pass that no gradient goes through (inference) with the batch on
        the last axis, each step's GEMM as ``W^T @ [x_t; h]^T`` (`jaxrnn.layers.feature_major`), for
        cells with the fused split and a dense input projection not hoisted; same values. None picks
        per backend and shape (`default_feature_major`: on XLA:CPU for 8-32 rows and gates at least
        512 wide, where it took 0.63-0.97x the batch-major time). Gradients are unaffected.
      persistent: run the recurrence as ONE kernel call for all steps instead of a loop of per-step
        kernels (`jaxrnn.layers.persistent`); same values to an ulp. On a CUDA GPU a `jaxrnn.LSTM`
        layer's forward recurrence (inference, and the forward half of training under
        ``fused_backward``) as a persistent Pallas kernel (`jaxrnn.kernels.persistent_lstm`: each
        multiprocessor keeps 16 units' weights in registers for all T steps). On the CPU a float32
        `jaxrnn.LSTM`, `jaxrnn.GRU` (``reset_after``) or `jaxrnn.SimpleRNN` layer's forward and
        backward recurrence as a C++ kernel
        built on first use (`jaxrnn.kernels.cpu_recurrence`: threads split the hidden units, each
        step one GEMM of ``[x_t, h_{t-1}]`` and the gate math without leaving the call). None
        (default): where it runs and measured faster: plain steps (no lengths, zoneout, recurrent
        dropout, probe); on a GPU an LSTM at up to 64 rows (H100, B=16 H=768 fp16 forward: 4.2
        against 6.1 ms); on the CPU steps of up to 2^24 multiply-adds (forward+backward 0.45-0.82x
        the scan's time, `benchmarks/RESULTS.md`). True: always, or a ValueError naming what is
        missing. False: never.
      method: how to evaluate the recurrence over time (`jaxrnn.parallel`). ``"sequential"``
        (default): ``lax.scan``, T steps in a row. ``"parallel"``: linear-recurrence cells (`MinGRU`,
        `MinLSTM`, `LRU`) by `jax.lax.associative_scan`, O(log T) depth, same values and gradients
        to round-off. ``"deer"`` / ``"quasi-deer"``: any cell with a real carry by Newton iterations
        that each solve the linearised recurrence by an associative scan, with the dense Jacobian
        (Lim et al. 2024; O(T n^2) memory for a carry of n numbers) or its diagonal (Gonzalez et al.
        2024; O(T n)); gradients by the implicit function theorem (reverse mode only). Non-sequential
        methods always project the inputs of all steps at once and ignore ``fused_backward`` and
        ``hoist``; they take no ``remat``, and ``"parallel"`` takes no ``zoneout``.
      tol: DEER methods: stop when no state moved by more than ``tol * max(1, max |state|)`` (default
        1e-5 for float32 carries, 1e-10 for float64).
      max_iter: DEER methods: iteration cap.
      fallback: DEER methods: if the iteration has not converged by then, return the sequential scan's
        result (chosen inside jit); False returns the last iterate. `apply_with_info` says which.

    Example::

        layer = jaxrnn.RNN(jaxrnn.LSTM(128))
        params = layer.init(jax.random.key(0), input_size=16)
        ys, carry = layer.apply(params, xs)                      # xs: [batch, T, 16]
        ys, carry = layer.apply(params, xs, lengths=lengths)     # right-padded batch

        deer = jaxrnn.RNN(jaxrnn.GRU(16), method="quasi-deer", max_iter=50)
        ys, carry, info = deer.apply_with_info(params, xs)     # info.iterations, info.fell_back

    With ``lengths`` ([*batch] ints in [0, T]) each sequence's carry stops at its own length, the
    outputs past it are exactly zero, and a length of 0 returns the initial carry.

    Convolutional cells (e.g. `jaxrnn.ConvLSTM` over a 2-D grid) take ``[*batch, T, *grid, C]``
    inputs and give ``[*batch, T, *grid, F]`` outputs; their carries include the grid.

    References:
      Gal & Ghahramani, "A theoretically grounded application of dropout in recurrent neural
      networks", NeurIPS 2016.
      Krueger et al., "Zoneout: regularizing RNNs by randomly preserving hidden activations", ICLR 2017.
      Lim et al., "Parallelizing non-linear sequential models over the sequence length", ICLR 2024.
      Gonzalez et al., "Towards scalable and stable parallelization of nonlinear RNNs", NeurIPS 2024.
    """

    cell: Cell
    _: dataclasses.KW_ONLY
    reverse: bool = False
    unroll: int | bool | None = None
    remat: bool | int = False
    time_major: bool = False
    dropout: float = 0.0
    recurrent_dropout: float = 0.0
    zoneout: Any = 0.0
    fused_backward: bool | None = None
    hoist: bool | None = None
    feature_major: bool | None = None
    persistent: bool | None = None
    method: str = "sequential"
    tol: float | None = None
    max_iter: int = 100
    fallback: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.cell, Cell):
            raise TypeError(f"RNN: argument 'cell' must be a jaxrnn cell, got {type(self.cell).__name__}")
        for flag in ("reverse", "time_major", "fallback"):
            if not isinstance(getattr(self, flag), bool):
                raise TypeError(f"RNN: argument '{flag}' must be a bool, got {getattr(self, flag)!r}")
        for flag in ("hoist", "fused_backward", "feature_major", "persistent"):
            if getattr(self, flag) is not None and not isinstance(getattr(self, flag), bool):
                raise TypeError(f"RNN: argument '{flag}' must be None or a bool, got {getattr(self, flag)!r}")
        if not isinstance(self.remat, bool):
            _checks.check_positive_int("RNN", "remat", self.remat)
        if self.unroll is not None:
            _checks.check_unroll("RNN", self.unroll)
        _checks.check_probability("RNN", "dropout", self.dropout)
        _checks.check_probability("RNN", "recurrent_dropout", self.recurrent_dropout)
        noise.check_zoneout("RNN", self.zoneout)
        self._check_method()

    def _check_method(self) -> None:
        _checks.check_choice("RNN", "method", self.method, METHODS)
        _checks.check_positive_int("RNN", "max_iter", self.max_iter)
        bad_tol = isinstance(self.tol, bool) or not isinstance(self.tol, (int, float)) or self.tol <= 0
        if self.tol is not None and bad_tol:
            raise ValueError(f"RNN: argument 'tol' must be None or a positive float, got {self.tol!r}")
        linear = isinstance(self.cell, LinearCell)
        if linear and self.recurrent_dropout > 0.0:
            raise ValueError(
                f"RNN: argument 'recurrent_dropout' must be 0.0 for {type(self.cell).__name__}, whose h_(t-1) "
                f"enters no recurrent kernel, got {self.recurrent_dropout}"
            )
        if self.method == "sequential":
            return
        if self.remat:
            raise ValueError(
                f"RNN: argument 'remat' must be False with method={self.method!r} (it chunks the sequential scan), "
                f"got {self.remat!r}"
            )
        if self.method == "parallel":
            if not linear:
                raise ValueError(
                    f"RNN: method='parallel' needs a linear-recurrence cell (MinGRU, MinLSTM, LRU), got "
                    f"{type(self.cell).__name__}; for nonlinear cells use method='deer' or 'quasi-deer'"
                )
            if self.zoneout != 0.0:
                raise ValueError(f"RNN: argument 'zoneout' must be 0.0 with method='parallel', got {self.zoneout!r}")

    # ---- layer protocol ---------------------------------------------------------------------------

    @property
    def output_size(self) -> int:
        return self.cell.output_size

    def init(self, key: PRNGKey, input_size: int) -> Params:
        """The cell's parameters for inputs with `input_size` features."""
        return self.cell.init(key, input_size)

    def initial_carry(self, params: Params, batch_shape: tuple[int, ...] = ()) -> Carry:
        return self.cell.initial_carry(params, tuple(batch_shape))

    def apply(
        self,
        params: Params,
        xs: Array,
        *,
        lengths: Array | None = None,
        carry: Carry | None = None,
        key: PRNGKey | None = None,
        probe: Array | None = None,
    ) -> tuple[Array, Carry]:
        """Runs the layer over a batch of sequences.

        Args:
          params: from `init`.
          xs: ``[*batch, T, F]`` (or ``[T, *batch, F]`` if ``time_major``), any number of batch dims.
          lengths: optional ``[*batch]`` integer lengths of right-padded sequences.
          carry: optional initial carry with leading dims ``batch`` (default: the cell's zeros).
          key: optional ``jax.random`` key; switches on ``dropout``, ``recurrent_dropout`` and the
            stochastic form of ``zoneout`` (no key: inference).
          probe: optional additive perturbation of the hidden state at every step, shaped like the
            outputs. Pass zeros and differentiate w.r.t. it to get dL/dh_t for every t from one
            backward pass (see `jaxrnn.diagnostics`). The probed h_t is also the output at t.

        Returns:
          ``(ys, final_carry)``: outputs ``[*batch, T, H]`` (time-major if ``time_major``) and the
          carry after each sequence's last valid step.
        """
        return self._apply("RNN.apply", params, xs, lengths, carry, key, probe)[:2]

    def apply_with_info(
        self,
        params: Params,
        xs: Array,
        *,
        lengths: Array | None = None,
        carry: Carry | None = None,
        key: PRNGKey | None = None,
        probe: Array | None = None,
    ) -> tuple[Array, Carry, NewtonInfo]:
        """`apply`, plus how the evaluation over time went: ``(ys, final_carry, info)`` with a
        `jaxrnn.parallel.NewtonInfo` (DEER iterations, convergence, whether the sequential fallback
        produced the result; zero iterations for the sequential scan and the parallel linear scan)."""
        return self._apply("RNN.apply_with_info", params, xs, lengths, carry, key, probe)

    def _apply(self, fn: str, params: Params, xs: Any, lengths: Any, carry: Any, key: Any, probe: Any):
        if key is not None:
            _checks.check_key(fn, "key", key)
        xs, lengths, carry, batch_shape = self.check_inputs(fn, params, xs, lengths, carry)
        if probe is not None:
            expected = (*xs.shape[:-1], self.output_size)
            if tuple(probe.shape) != expected:
                raise ValueError(
                    f"{fn}: argument 'probe' must have the outputs' shape {expected}, got {tuple(probe.shape)}"
                )
        return self._apply_checked(params, xs, lengths, carry, batch_shape, probe, key, with_info=True)

    # ---- validation -------------------------------------------------------------------------------

    @property
    def layout(self) -> str:
        step = "*grid, C" if self.cell.num_feature_axes > 1 else "F"
        return f"[T, *batch, {step}]" if self.time_major else f"[*batch, T, {step}]"

    def split_shape(self, shape: tuple[int, ...]) -> tuple[int, tuple[int, ...]]:
        """``(T, batch_shape)`` of an input of `shape` in this layer's layout."""
        nf = self.cell.num_feature_axes
        if self.time_major:
            return shape[0], tuple(shape[1 : len(shape) - nf])
        return shape[-1 - nf], tuple(shape[: -1 - nf])

    def check_inputs(
        self, fn: str, params: Params, xs: Any, lengths: Any, carry: Carry | None
    ) -> tuple[Array, Array | None, Carry, tuple[int, ...]]:
        """Validates the arguments of `apply`; returns them as arrays plus the batch shape."""
        input_size = self.cell.check_params(fn, params)
        nf = self.cell.num_feature_axes
        xs = _checks.check_float_array(fn, "xs", xs, min_ndim=1 + nf, layout=self.layout)
        _checks.check_feature_size(fn, "xs", xs, input_size, self.layout)
        num_steps, batch_shape = self.split_shape(xs.shape)
        if lengths is not None:
            lengths = _checks.check_lengths(fn, lengths, batch_shape, num_steps)
        carry_shape = (*batch_shape, *xs.shape[xs.ndim - nf : -1])  # convolutional cells' carries hold the grid
        expected = jax.eval_shape(functools.partial(self.cell.initial_carry, batch_shape=carry_shape), params)
        if carry is None:
            carry = self.cell.initial_carry(params, carry_shape)
        else:
            _checks.check_tree_like(fn, "carry", carry, expected, check_dtype=True)
        return xs, lengths, carry, batch_shape

    # ---- the scan ---------------------------------------------------------------------------------

    def _apply_checked(
        self,
        params: Params,
        xs: Array,
        lengths: Array | None,
        carry: Carry,
        batch_shape: tuple[int, ...],
        probe: Array | None = None,
        key: PRNGKey | None = None,
        *,
        with_info: bool = False,
    ) -> tuple[Array, Carry] | tuple[Array, Carry, NewtonInfo]:
        cell = self.cell
        nf = cell.num_feature_axes
        step_shape = xs.shape[xs.ndim - nf :]  # (F,), or (*grid, C) for convolutional cells
        num_steps = xs.shape[0] if self.time_major else xs.shape[-1 - nf]
        batch = math.prod(batch_shape)
        nb = len(batch_shape)

        # One flat batch axis. The loop works time-major, [T, B, F]; with remat each chunk is sliced
        # out of the inputs in their own layout, so no transposed copy of the whole sequence (or of
        # its gradient) is ever held: that copy alone outweighs what remat keeps.
        time_axis = 0 if self.time_major else 1
        chunked = bool(self.remat) and self.method == "sequential" and num_steps > 0
        if self.time_major:
            xs = xs.reshape(num_steps, batch, *step_shape)
        else:
            xs = xs.reshape(batch, num_steps, *step_shape)
        carry = jax.tree.map(lambda c: c.reshape(batch, *c.shape[nb:]), carry)
        in_mask, rec_mask, zone_masks = self._draw_noise(key, num_steps, (batch, *step_shape), xs.dtype, carry)
        valid = None if lengths is None else jnp.arange(num_steps)[:, None] < lengths.reshape(1, batch)  # [T, B]
        if probe is not None:
            probe = probe.reshape(*xs.shape[:2], *probe.shape[nb + 1 :])
        zone_rates = None if self.zoneout == 0.0 else noise.zoneout_rates("RNN.apply", self.zoneout, carry)
        finish = functools.partial(_finish_step, cell, zone_rates)
        if chunked:
            segment = functools.partial(self._scan_segment, params, finish, rec_mask)
            final, ys = self._scan_in_chunks(segment, carry, (xs, valid, probe, zone_masks), time_axis, in_mask)
            info = NewtonInfo.exact() if with_info else None
        else:
            xs_tm, probe_tm = (xs, probe) if self.time_major else (jnp.swapaxes(xs, 0, 1), _swap_01(probe))
            if in_mask is not None:
                xs_tm = xs_tm * in_mask
            scanned = (xs_tm, valid, probe_tm, zone_masks)
            if self.method == "sequential" or num_steps == 0:  # zero steps: nothing to parallelise
                final, ys = self._scan_segment(params, finish, rec_mask, carry, scanned)
                info = NewtonInfo.exact() if with_info else None
            else:  # parallel in time (jaxrnn.parallel)
                final, ys, info = evaluate(self, params, finish, rec_mask, carry, scanned)
        if valid is not None:
            ys = jnp.where(valid.reshape(valid.shape + (1,) * (ys.ndim - 2)), ys, 0)

        out_tail = ys.shape[2:]
        if self.time_major:
            ys = ys.reshape(num_steps, *batch_shape, *out_tail)
        else:
            ys = jnp.swapaxes(ys, 0, 1).reshape(*batch_shape, num_steps, *out_tail)
        final = jax.tree.map(lambda c: c.reshape(*batch_shape, *c.shape[1:]), final)
        return (ys, final, info) if with_info else (ys, final)

    def _scan_segment(
        self, params: Params, finish: Any, recurrent_mask: Array | None, carry: Carry, scanned: tuple
    ) -> tuple[Carry, Array]:
        """Scans time-major inputs ``(xs, valid, probe, zoneout masks)`` from `carry`."""
        cell = self.cell
        xs, valid, probe, zone_masks = scanned
        hoist = default_hoist() if self.hoist is None else self.hoist
        unroll = self.scan_unroll(params, xs.shape[1])
        fused = self.fused_backward
        if fused is None:
            fused = default_fused_backward()
        if self.persistent and not (fused and supports_fused(cell)):
            raise ValueError(
                f"RNN: persistent=True needs a plain jaxrnn.LSTM (or, on the CPU, jaxrnn.GRU with reset_after or jaxrnn.SimpleRNN) cell and fused_backward not False, "
                f"got {type(cell).__name__} with fused_backward={self.fused_backward!r}"
            )
        if fused and supports_fused(cell):
            feature_major = self.feature_major
            if feature_major is None:
                feature_major = default_feature_major(xs.shape[1], params["w_hh"].shape[-1])
            plain_steps = valid is None and probe is None and recurrent_mask is None and zone_masks is None and self.zoneout == 0.0
            return fused_scan(
                cell, finish, params, carry, xs, probe, valid, recurrent_mask, zone_masks,
                reverse=self.reverse, unroll=unroll, hoist=hoist,
                inference_unroll=self.scan_unroll(params, xs.shape[1], differentiated=False),
                feature_major=feature_major and supports_feature_major(cell, hoist),
                persistent=persistent_options(self.persistent, cell, params, carry, xs, plain_steps=plain_steps),
            )

        def step(params: Params, rec_mask: Array | None, c: Carry, x_and_probe: tuple, ok_and_zm: tuple) -> tuple[Carry, Array]:
            (x_or_u, p), (ok, zm) = x_and_probe, ok_and_zm
            u = x_or_u if hoist else cell.project(params, x_or_u)
            recur_kw = {} if rec_mask is None else {"recurrent_mask": rec_mask}
            return finish(*cell.recur(params, c, u, **recur_kw), c, ok, p, zm)

        inputs = cell.project(params, xs) if hoist else xs
        loop = dict(reverse=self.reverse, unroll=unroll)
        if fused and stacking.affected(params, carry, inputs):
            # autodiff's bfloat16 residual stacks are rewritten whole every step on XLA:CPU
            return stacking.scan_recomputing(step, params, carry, (inputs, probe), recurrent_mask, (valid, zone_masks), **loop)

        def body(c: Carry, step_inputs: tuple) -> tuple[Carry, Array]:
            x_or_u, ok, p, zm = step_inputs
            return step(params, recurrent_mask, c, (x_or_u, p), (ok, zm))

        return stacking.scan(body, carry, (inputs, valid, probe, zone_masks), **loop)

    def scan_unroll(self, params: Params, batch: int, *, differentiated: bool = True) -> int | bool:
        """The unroll factor the loop over a flat batch of ``batch`` sequences runs with: ``unroll``,
        or the backend's choice for this step size when it is None (``differentiated=False``: for a
        forward pass no gradient goes through, which the fused loop runs apart)."""
        if self.unroll is not None:
            return self.unroll
        kernel = params.get("w_hh") if self.cell.num_feature_axes == 1 and isinstance(params, dict) else None
        return default_unroll(batch, None if kernel is None else kernel.size, differentiated=differentiated)

    def _scan_in_chunks(
        self, segment: Any, carry: Carry, scanned: tuple, time_axis: int, in_mask: Array | None
    ) -> tuple[Carry, Array]:
        """``remat``: `segment` over chunks of k steps under ``jax.checkpoint``. The forward keeps only
        the carry at each chunk boundary and the backward recomputes one chunk at a time (Chen et al.
        2016, "Training deep nets with sublinear memory cost").

        ``scanned`` is ``(xs, valid, probe, zoneout masks)``; ``xs`` and ``probe`` have time on
        ``time_axis`` (the caller's layout), the rest on axis 0. Each chunk is sliced out inside the
        checkpointed body, so the gradient w.r.t. ``xs`` accumulates in place in its own layout. The
        last ``T mod k`` steps run as one shorter chunk, so no input is ever padded.
        """
        xs = scanned[0]
        num_steps = xs.shape[time_axis]
        k = min(num_steps, max(1, math.isqrt(num_steps)) if self.remat is True else int(self.remat))
        full, rest = divmod(num_steps, k)
        axes = (time_axis, 0, time_axis, 0)

        def run(c: Carry, start: Any, size: int) -> tuple[Carry, Array]:
            chunk = tuple(
                jax.tree.map(lambda a, ax=ax: _time_major_slice(a, ax, start, size), part)
                for part, ax in zip(scanned, axes)
            )
            if in_mask is not None:
                chunk = (chunk[0] * in_mask, *chunk[1:])
            return segment(c, chunk)

        def full_chunks(c: Carry) -> tuple[Carry, Array]:
            step = jax.checkpoint(lambda c, i: run(c, i * k, k))
            c, ys = stacking.scan(step, c, jnp.arange(full), reverse=self.reverse)
            return c, ys.reshape(full * k, *ys.shape[2:])

        def last_chunk(c: Carry) -> tuple[Carry, Array]:
            return jax.checkpoint(lambda c: run(c, full * k, rest))(c)

        if not rest:
            return full_chunks(carry)
        if self.reverse:  # the short chunk holds the last steps: a reverse scan meets it first
            carry, ys_last = last_chunk(carry)
            carry, ys = full_chunks(carry)
        else:
            carry, ys = full_chunks(carry)
            carry, ys_last = last_chunk(carry)
        return carry, jnp.concatenate([ys, ys_last])

    def _draw_noise(
        self, key: PRNGKey | None, num_steps: int, row_shape: tuple[int, ...], dtype: Any, carry: Carry
    ) -> tuple[Array | None, Array | None, Carry | None]:
        """Training noise for one call: the input dropout mask (one per sequence, ``row_shape`` =
        ``(B, *step)``), the recurrent dropout mask (``[B, H]``) and zoneout keep-masks ([T, B, ...]
        per carry leaf); all None without a key."""
        if key is None:
            return None, None, None
        k_in, k_rec, k_zone = jax.random.split(key, 3)
        in_mask = rec_mask = zone_masks = None
        if self.dropout > 0.0:
            in_mask = noise.dropout_mask(k_in, self.dropout, row_shape, dtype)
        if self.recurrent_dropout > 0.0:
            h = self.cell.hidden(carry)
            rec_mask = noise.dropout_mask(k_rec, self.recurrent_dropout, h.shape, h.dtype)
        if self.zoneout != 0.0:
            rates = noise.zoneout_rates("RNN.apply", self.zoneout, carry)
            zone_masks = noise.zoneout_masks(k_zone, rates, carry, num_steps)
        return in_mask, rec_mask, zone_masks


def _swap_01(a: Array | None) -> Array | None:
    return None if a is None else jnp.swapaxes(a, 0, 1)


def _time_major_slice(a: Array, axis: int, start: Any, size: int) -> Array:
    """Steps ``[start, start + size)`` of `a` along its time `axis`, time first."""
    a = jax.lax.dynamic_slice_in_dim(a, start, size, axis=axis)
    return a if axis == 0 else jnp.swapaxes(a, 0, axis)
