"""The benchmark suites: which specs each one times."""

from __future__ import annotations

from benchmarks.spec import Spec

CPU_SHAPES = [(32, 128, 32, 128), (16, 512, 64, 256), (1, 1000, 8, 64), (256, 64, 128, 512)]
GPU_SHAPES_LSTM = [(16, 1024, 768, 768), (64, 1024, 1024, 1024), (256, 256, 2048, 2048)]


def cpu(dtypes: tuple[str, ...] = ("float32", "bfloat16")) -> list[Spec]:
    specs = [Spec(cell, *shape, dtype=dtype) for dtype in dtypes for shape in CPU_SHAPES for cell in ("lstm", "gru", "rnn")]
    specs += [Spec("lstm", *CPU_SHAPES[0], layers=2, bidirectional=True, dtype=d) for d in dtypes]
    return specs


def gpu(dtypes: tuple[str, ...] = ("float32", "bfloat16", "float16")) -> list[Spec]:
    specs = [Spec("lstm", *shape, dtype=d) for d in dtypes for shape in GPU_SHAPES_LSTM]
    specs += [Spec("lstm", 16, 1024, 768, 768, layers=4, bidirectional=True, dtype=d) for d in dtypes]
    specs += [Spec(cell, 64, 1024, 1024, 1024, dtype=d) for d in dtypes for cell in ("gru", "rnn")]
    return specs


def quick() -> list[Spec]:
    """Tiny shapes, for the smoke test that checks the runner works (never for numbers)."""
    return [Spec(cell, 4, 16, 8, 16) for cell in ("lstm", "gru", "rnn")] + [
        Spec("lstm", 4, 16, 8, 16, layers=2, bidirectional=True)
    ]


SUITES = {"cpu": cpu, "gpu": gpu, "quick": quick}
