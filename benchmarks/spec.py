"""What one benchmark case is: a cell kind, a shape, a depth/direction and a dtype."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable


@dataclasses.dataclass(frozen=True)
class Spec:
    cell: str  # "lstm" | "gru" | "rnn" (Elman, tanh)
    batch: int
    steps: int
    input_size: int
    hidden: int
    layers: int = 1
    bidirectional: bool = False
    dtype: str = "float32"  # "float32" | "bfloat16" | "float16"

    @property
    def shape(self) -> str:
        return f"B={self.batch} T={self.steps} I={self.input_size} H={self.hidden}"

    @property
    def network(self) -> str:
        depth = f"{self.layers}-layer " if self.layers > 1 else ""
        return f"{depth}{'bi-' if self.bidirectional else ''}{self.cell.upper()}"

    def flops(self) -> float:
        """Matmul FLOPs of one forward pass (2 per multiply-add), input and recurrent, all layers."""
        gates = {"lstm": 4, "gru": 3, "rnn": 1}[self.cell]
        dirs = 2 if self.bidirectional else 1
        total, fan_in = 0.0, self.input_size
        for _ in range(self.layers):
            total += dirs * 2.0 * self.batch * self.steps * gates * self.hidden * (fan_in + self.hidden)
            fan_in = self.hidden * dirs
        return total


@dataclasses.dataclass
class Case:
    """A ready-to-time implementation of a Spec.

    `forward` and `forward_backward` run once each and block until the result is ready.
    `compile_seconds` / `memory_bytes` hold what the implementation could report (None otherwise).
    """

    impl: str
    forward: Callable[[], Any]
    forward_backward: Callable[[], Any]
    compile_seconds: dict[str, float] = dataclasses.field(default_factory=dict)
    memory_bytes: dict[str, int] = dataclasses.field(default_factory=dict)
    note: str = ""


class Unsupported(Exception):
    """Raised by a peer that cannot run a Spec (missing package, feature or backend)."""
