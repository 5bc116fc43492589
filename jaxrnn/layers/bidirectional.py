"""`Bidirectional`: a forward and a backward `RNN` over the same inputs, outputs merged."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

from jaxrnn import _checks
from jaxrnn._typing import Array, Carry, Params, PRNGKey
from jaxrnn.layers.rnn import RNN
from jaxrnn.layers.tuning import default_fuse_directions
from jaxrnn.masking import reverse_padded

MERGES: dict[str, Callable[[Array, Array], Array]] = {
    "concat": lambda a, b: jnp.concatenate([a, b], axis=-1),
    "sum": lambda a, b: a + b,
    "mean": lambda a, b: (a + b) / 2,
    "mul": lambda a, b: a * b,
}


@dataclasses.dataclass(frozen=True)
class Bidirectional:
    """Runs `forward` left-to-right and `backward` right-to-left and merges their outputs.

    The backward layer always runs in reverse (a plain ``RNN(cell)`` may be passed; it is run with
    ``reverse=True``) and with ``lengths`` it reverses each sequence *within its own length*: it
    starts at the sequence's last valid step, so padding never leaks into the backward state, and
    its outputs stay aligned with the inputs (padding at the end, exactly zero).

    Args:
      forward: an `RNN` with ``reverse=False``.
      backward: an `RNN` (default: the same config as `forward`, with its own parameters).
      merge: ``"concat"`` (default, output size H_f + H_b), ``"sum"``, ``"mean"`` or ``"mul"``.
      fuse_directions: run both directions in ONE scan (``jax.vmap`` over a direction axis, the
        backward inputs reversed within each length), so each step does both directions' work in
        one batched matmul: half the loop iterations. Same results (with a key, zoneout's per-step
        masks reach the backward direction in reversed time order). Needs both directions to share
        one config (cell and options) and batch-major dense inputs. ``None`` (default) picks per
        backend (`jaxrnn.layers.tuning.default_fuse_directions`): on GPU / TPU wherever it can and
        changes nothing but speed (a shared sequential config without zoneout; a 4-layer
        bidirectional LSTM trained 1.4-1.7x faster on an H100, benchmarks/RESULTS.md), never on
        XLA:CPU, where it measured no consistent gain.

    Params: ``{"forward": ..., "backward": ...}``. Carry: ``(forward_carry, backward_carry)``.

    Example::

        layer = jaxrnn.Bidirectional(jaxrnn.RNN(jaxrnn.GRU(64)))
        params = layer.init(jax.random.key(0), input_size=10)
        ys, (h_fwd, h_bwd) = layer.apply(params, xs, lengths=lengths)   # ys: [B, T, 128]

    References:
      Schuster & Paliwal, "Bidirectional recurrent neural networks", IEEE TSP 45(11), 1997.
    """

    forward: RNN
    backward: RNN | None = None
    _: dataclasses.KW_ONLY
    merge: str = "concat"
    fuse_directions: bool | None = None

    def __post_init__(self) -> None:
        for name in ("forward", "backward"):
            layer = getattr(self, name)
            if layer is not None and not isinstance(layer, RNN):
                raise TypeError(f"Bidirectional: argument '{name}' must be a jaxrnn.RNN, got {type(layer).__name__}")
        if self.forward.reverse:
            raise ValueError("Bidirectional: argument 'forward' must have reverse=False, got reverse=True")
        backward = self.forward if self.backward is None else self.backward
        object.__setattr__(self, "backward", dataclasses.replace(backward, reverse=True))
        _checks.check_choice("Bidirectional", "merge", self.merge, tuple(MERGES))
        if self.forward.time_major != self.backward.time_major:
            raise ValueError(
                "Bidirectional: arguments 'forward' and 'backward' must share time_major, got "
                f"{self.forward.time_major} and {self.backward.time_major}"
            )
        if self.fuse_directions is not None and not isinstance(self.fuse_directions, bool):
            raise TypeError(
                f"Bidirectional: argument 'fuse_directions' must be None or a bool, got {self.fuse_directions!r}"
            )
        if self.fuse_directions and not self._can_fuse():
            raise ValueError(
                "Bidirectional: fuse_directions=True needs 'forward' and 'backward' to share one config "
                "(cell and options), batch-major inputs and a dense cell; got "
                f"forward={self.forward!r}, backward={self.backward!r}"
            )
        if self.merge != "concat" and self.forward.output_size != self.backward.output_size:
            raise ValueError(
                f"Bidirectional: merge={self.merge!r} needs equal output sizes, got forward "
                f"{self.forward.output_size} and backward {self.backward.output_size}"
            )

    def _can_fuse(self) -> bool:
        return (
            dataclasses.replace(self.backward, reverse=False) == self.forward
            and not self.forward.time_major
            and self.forward.cell.num_feature_axes == 1
        )

    def runs_in_one_scan(self) -> bool:
        """Whether `apply` runs both directions in one scan: ``fuse_directions``, or with None the
        backend's choice, taken only where fusing gives the same results as two scans."""
        if self.fuse_directions is not None:
            return self.fuse_directions
        # zoneout's per-step masks and the parallel methods' convergence checks differ under the vmap
        same_results = self.forward.method == "sequential" and self.forward.zoneout == 0.0
        return default_fuse_directions() and same_results and self._can_fuse()

    @property
    def time_major(self) -> bool:
        return self.forward.time_major

    @property
    def output_size(self) -> int:
        if self.merge == "concat":
            return self.forward.output_size + self.backward.output_size
        return self.forward.output_size

    def init(self, key: PRNGKey, input_size: int) -> Params:
        k_f, k_b = jax.random.split(key)
        return {"forward": self.forward.init(k_f, input_size), "backward": self.backward.init(k_b, input_size)}

    def initial_carry(self, params: Params, batch_shape: tuple[int, ...] = ()) -> Carry:
        return (
            self.forward.initial_carry(params["forward"], batch_shape),
            self.backward.initial_carry(params["backward"], batch_shape),
        )

    def apply(
        self,
        params: Params,
        xs: Array,
        *,
        lengths: Array | None = None,
        carry: Carry | None = None,
        key: PRNGKey | None = None,
        probe: tuple[Array, Array] | None = None,
    ) -> tuple[Array, Carry]:
        """Same arguments and layouts as `RNN.apply`; ``carry`` and ``probe`` are (forward, backward) pairs."""
        fn = "Bidirectional.apply"
        _check_param_keys(fn, params, ("forward", "backward"))
        carries = _split_carry(fn, carry, 2)
        probes = _split_carry(fn, probe, 2, arg="probe")
        keys = (None, None) if key is None else tuple(jax.random.split(key))
        if self.runs_in_one_scan():
            return self._apply_in_one_scan(params, xs, lengths, carries, keys, probes)
        ys_f, c_f = self.forward.apply(
            params["forward"], xs, lengths=lengths, carry=carries[0], key=keys[0], probe=probes[0]
        )
        ys_b, c_b = self.backward.apply(
            params["backward"], xs, lengths=lengths, carry=carries[1], key=keys[1], probe=probes[1]
        )
        return MERGES[self.merge](ys_f, ys_b), (c_f, c_b)


    def _apply_in_one_scan(
        self, params: Params, xs: Array, lengths: Array | None, carries: tuple, keys: tuple, probes: tuple
    ) -> tuple[Array, Carry]:
        """Both directions as a batch of two forward scans; the backward one reads each sequence
        reversed within its length, so its outputs are reversed back the same way."""
        flip = lambda a: reverse_padded(a, lengths)  # noqa: E731
        batch_shape = tuple(xs.shape[:-2])
        carries = tuple(
            c if c is not None else layer.initial_carry(params[name], batch_shape)
            for c, layer, name in zip(carries, (self.forward, self.backward), ("forward", "backward"))
        )
        stack = lambda a, b: jax.tree.map(lambda x, y: jnp.stack([x, y]), a, b)  # noqa: E731
        args = [stack(params["forward"], params["backward"]), stack(xs, flip(xs)), stack(*carries)]
        has_key, has_probe = keys[0] is not None, probes[0] is not None
        if has_key:
            args.append(jnp.stack(keys))
        if has_probe:
            args.append(stack(probes[0], flip(probes[1])))

        # the persistent kernel would run the vmapped directions one after the other (H100, 4-layer
        # bi-LSTM fp16: 61 against 31 ms forward): only where asked for
        layer = self.forward if self.forward.persistent else dataclasses.replace(self.forward, persistent=False)

        def one_direction(p, x, c, *rest):
            k = rest[0] if has_key else None
            pr = rest[-1] if has_probe else None
            return layer.apply(p, x, lengths=lengths, carry=c, key=k, probe=pr)

        ys, finals = jax.vmap(one_direction)(*args)
        unstack = lambda tree, i: jax.tree.map(lambda a: a[i], tree)  # noqa: E731
        return MERGES[self.merge](ys[0], flip(ys[1])), (unstack(finals, 0), unstack(finals, 1))


def _check_param_keys(fn: str, params: Any, keys: tuple[str, ...]) -> None:
    if not isinstance(params, dict) or set(params) != set(keys):
        got = sorted(params) if isinstance(params, dict) else type(params).__name__
        raise ValueError(f"{fn}: argument 'params' must be a dict with keys {list(keys)}, got {got}")


def _split_carry(fn: str, carry: Any, n: int, *, arg: str = "carry") -> tuple[Any, ...]:
    """Splits a per-sub-layer tuple (carries or probes), checking it has one entry per sub-layer."""
    if carry is None:
        return (None,) * n
    if not isinstance(carry, (tuple, list)) or len(carry) != n:
        got = f"a {type(carry).__name__} of length {len(carry)}" if isinstance(carry, (tuple, list)) else type(carry).__name__
        raise ValueError(f"{fn}: argument '{arg}' must be a tuple of {n} entries (one per sub-layer), got {got}")
    return tuple(carry)
