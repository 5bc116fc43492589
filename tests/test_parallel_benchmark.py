"""benchmarks/parallel.py works (tiny sizes, one rep); its analysis from hand-made rows. Nothing is timed."""

from __future__ import annotations

from benchmarks import parallel


def test_one_tiny_case_has_times_memory_and_iterations():
    fwd, fwdbwd = parallel.run_case("GRU", "quasi-deer", hidden=3, steps=8, batch=1, reps=1, warmup=0)
    assert (fwd["mode"], fwdbwd["mode"]) == ("fwd", "fwdbwd")
    assert fwd["seconds"] > 0 and fwdbwd["peak_bytes"] > fwd["peak_bytes"] > 0
    assert 1 <= fwd["iterations"] <= 9 and fwd["converged"] and not fwd["fell_back"]


def test_cases_over_the_memory_or_time_budget_are_skipped():
    # dense Jacobians of T = 2^20 steps, H = 64, batch 8: 5 x 64 x 64 floats per step = 640 GiB
    assert parallel.deer_bytes(8, 1 << 20, 64, "deer") == 640 * 2**30
    assert parallel.skip_reason("deer", 8, 1 << 20, 64, None, 8.0, 60.0) == "Jacobians need 640.0 GiB > 8.0 GiB"
    assert parallel.skip_reason("quasi-deer", 8, 1 << 20, 64, None, 8.0, 60.0) is None  # 4 GiB: diagonal only
    assert parallel.skip_reason("sequential", 8, 4096, 64, (1024, 20.0), 8.0, 60.0) == "projected 80 s > 60.0 s per run"
    assert parallel.skip_reason("sequential", 8, 4096, 64, (1024, 10.0), 8.0, 60.0) is None


def _rows(times: dict[str, list[float]], steps=(256, 1024, 4096, 16384)) -> list[dict]:
    cell = "GRU" if "deer" in times else "MinGRU"
    return [
        {"cell": cell, "method": m, "hidden": 16, "steps": t, "batch": 8, "mode": mode, "seconds": s, "min": s, "max": s,
         "peak_bytes": 2**20, "iterations": 5, "converged": True, "fell_back": False}
        for m, ts in times.items() for t, s in zip(steps, ts) for mode in parallel.MODES
    ]  # fmt: skip


def test_crossover_speedups_and_losses_from_rows():
    rows = _rows({"sequential": [1.0, 1.0, 1.0, 1.0], "deer": [2.0, 0.5, 1.5, 0.25]})
    assert parallel.speedup(rows, "GRU", "deer", 16, 16384, "fwd") == 4.0
    # faster at 1024, slower again at 4096, faster from then on: the crossover lies in (4096, 16384]
    assert parallel.crossover(rows, "GRU", "deer", 16, "fwd") == "4096 < T <= 16384"
    always = _rows({"sequential": [1.0] * 4, "parallel": [0.5] * 4})
    assert parallel.crossover(always, "MinGRU", "parallel", 16, "fwdbwd").startswith("<= 256")
    never = _rows({"sequential": [1.0] * 4, "parallel": [2.0] * 4})
    assert parallel.crossover(never, "MinGRU", "parallel", 16, "fwd") == "none up to T=16384"
    lost = parallel.losses(rows, [{"cell": "GRU", "method": "deer", "hidden": 128, "steps": 65536, "reason": "r"}])
    assert "- GRU deer forward is slower at H=16: T=256, 4096." in lost
    assert lost[-1] == "- Not run: GRU deer H=128 T=65536 (r)."


def test_markdown_and_plot_from_rows(tmp_path):
    rows = _rows({"sequential": [1.0, 2.0, 4.0, 8.0], "deer": [4.0, 4.0, 2.0, 2.0]})
    rows += _rows({"sequential": [1.0, 2.0, 4.0, 8.0], "parallel": [0.5, 0.5, 0.5, 0.5]}, steps=(256, 512, 4096, 16384))
    env = {"cpu_model": "test cpu", "cpu_count": 2, "platform": "p", "jax_backend": "cpu", "XLA_FLAGS": ""}
    text = parallel.markdown(rows, [], env, "cmd", "parallel.png")
    assert "| GRU | deer | 16 | 1024 < T <= 4096 | 1024 < T <= 4096 |" in text
    assert "Measured (forward): 4.00x at T=512, H=16, 8.00x at T=4096, H=16." in text
    assert "deer 0.25x at H=16, T=256" in text
    assert "| 4096 | 4000 | 2000 | 4000 | 2000 | 2.00x | 2.00x | 5 | 1.0 | 1.0 |" in text  # GRU, T=4096
    parallel.plot(rows, tmp_path / "p.png", "test")
    assert (tmp_path / "p.png").stat().st_size > 10_000
