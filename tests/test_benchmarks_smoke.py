"""The benchmark runner works (tiny shapes, one rep). Benchmarks are never timed in tests."""

from __future__ import annotations

import json

import pytest

from benchmarks import report, run
from benchmarks.spec import Spec


def test_cli_writes_json(tmp_path):
    out = tmp_path / "quick.json"
    argv = ["--suite", "quick", "--reps", "1", "--warmup", "0", "--cells", "rnn,gru", "--networks", "RNN,2-layer bi-LSTM",
            "--families", "jaxrnn", "--shapes", "4,16,8,16"]
    assert run.main(argv + ["--json", str(out), "--no-report"]) == 0
    payload = json.loads(out.read_text())
    (ours,) = payload["results"]
    assert ours["impl"] == "jaxrnn" and ours["network"] == "RNN" and payload["environment"]["versions"]["jax"]
    assert ours["fwdbwd"]["median"] > 0 and ours["compile_seconds"]["fwdbwd"] > 0
    assert ours["memory_bytes"]["fwdbwd"] > ours["memory_bytes"]["fwd"] > 0


def test_side_by_side_run_and_markdown():
    spec = Spec("lstm", 2, 8, 3, 8)
    results = run.run([spec], reps=1, warmup=0, families={"jaxrnn", "flax.linen"}, log=lambda *_: None)
    assert {e["impl"] for e in results} == {"jaxrnn", "linen.LSTMCell", "linen.OptimizedLSTMCell"}
    text = report.markdown("quick", {"cpu_model": "x", "cpu_count": 2, "platform": "p", "jax_backend": "cpu",
                                     "XLA_FLAGS": "", "versions": {}}, results, "cmd")
    assert "| LSTM | B=2 T=8 I=3 H=8 | float32 |" in text and "| linen.LSTMCell |" in text


def test_unavailable_peers_are_skipped_with_a_reason():
    families = {"equinox", "jax.experimental.rnn"}
    results = run.run([Spec("rnn", 2, 3, 2, 4)], reps=1, warmup=0, families=families, log=lambda *_: None)
    skipped = {e["family"]: e["skipped"] for e in results if "skipped" in e}
    assert set(skipped) == families  # neither can run an Elman RNN on CPU; each says why
    assert "cuDNN" in skipped["jax.experimental.rnn"]
    assert "Elman" in skipped["equinox"] or "not installed" in skipped["equinox"]


def test_every_jax_peer_runs_in_bfloat16():
    # A peer that errors in bfloat16 would silently drop out of the bfloat16 table.
    families = {"flax.linen", "flax.nnx", "haiku"}
    results = run.run([Spec("gru", 2, 4, 3, 4, dtype="bfloat16")], reps=1, warmup=0, families=families, log=lambda *_: None)
    assert {e["family"] for e in results} == families
    # Haiku is a bench extra, absent from a test install: only "not installed" may skip.
    assert not [e for e in results if "skipped" in e and "not installed" not in e["skipped"]]
    assert any(e["family"] == "flax.nnx" and "fwdbwd" in e for e in results)


def test_results_section_is_replaced_in_place(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text("# Benchmark results\n\nintro\n")
    report.write_section("cpu", "first", path)
    report.write_section("gpu", "gpu text", path)
    report.write_section("cpu", "second", path)
    text = path.read_text()
    assert "intro" in text and "gpu text" in text and "second" in text and "first" not in text


def test_flop_count_of_a_spec():
    # LSTM: 2 * B * T * 4H * (I + H) per layer and direction
    assert Spec("lstm", 2, 3, 5, 7).flops() == 2 * 2 * 3 * 4 * 7 * (5 + 7)
    two_layer_bi = Spec("gru", 1, 1, 4, 6, layers=2, bidirectional=True).flops()
    assert two_layer_bi == 2 * 2 * 3 * 6 * (4 + 6) + 2 * 2 * 3 * 6 * (12 + 6)


def test_scaling_table_and_plot_from_rows(tmp_path):
    from benchmarks import scaling

    rows = [
        {"axis": axis, "value": v, "impl": impl, "seconds": 0.001 * v * k, "min": 0.001, "peak_bytes": 2**20 * v, "gflop": 1.0}
        for axis, values in (("steps", [128, 256]), ("hidden", [32, 64]))
        for v in values
        for k, impl in enumerate(("jaxrnn", "jaxrnn remat", "linen.LSTMCell"), start=1)
    ]
    env = {"cpu_model": "test cpu"}
    text = scaling.markdown(rows, env, "cmd", "scaling.png")
    assert "| 256 | 256.0 | 512.0 | 768.0 | 256.0 | 256.0 |" in text
    scaling.plot(rows, tmp_path / "s.png")
    assert (tmp_path / "s.png").stat().st_size > 10_000


def test_hot_path_table_from_rows():
    from benchmarks import hot_path

    rows = [{"network": "LSTM", "shape": "B=1", "impl": impl, "fwd": 0.001 * k, "fwdbwd": 0.002 * k}
            for k, impl in enumerate([*hot_path.VARIANTS, "linen.LSTMCell", "torch.LSTM"], start=1)]
    prof = {"jaxrnn (default)": [("while.1", 1.5, 1.0), ("ynn_fusion", 0.5, 128.0)]}
    text = hot_path.markdown(rows, prof, {"cpu_model": "cpu"}, "cmd")
    assert "| LSTM | B=1 | 1 / 2 | 2 / 4 | 3 / 6 | 4 / 8 | 5 / 10 | 6 / 12 |" in text
    assert "| `ynn_fusion` | 0.50 | 128 |" in text


def test_roofline_runner_and_table(tmp_path):
    """The floor analysis runs end to end on tiny shapes; its table compares floor, target and times."""
    from benchmarks import roofline

    spec = roofline.Spec("gru", 2, 6, 3, 4)
    results = [
        {"spec": vars(spec), "family": "jaxrnn", "impl": "jaxrnn", "fwdbwd": {"median": 3e-3}},
        {"spec": vars(spec), "family": "flax", "impl": "linen.GRUCell", "fwdbwd": {"median": 2e-3}},
        {"spec": vars(spec), "family": "pytorch", "impl": "torch.GRU", "fwdbwd": {"median": 4e-3}},
    ]
    peak, rows = roofline.analyse([spec], results, peak_shapes=[(32, 32, 32)], reps=1, log=lambda *_: None)
    (row,) = rows
    assert peak > 0 and 0 < row["fwd_chain"] < row["fwd"] <= row["fwdbwd"]
    assert row["best_peer_impl"] == "linen.GRUCell" and row["target"] == 2e-3 / roofline.TARGET_SPEEDUP
    text = roofline.markdown(peak, rows, {"cpu_model": "x"}, "cmd", "r.json")
    assert "| GRU | B=2 T=6 I=3 H=4 |" in text and "linen.GRUCell" in text
    out = tmp_path / "roofline.json"
    assert roofline.main(["--quick", "--reps", "1", "--no-report", "--json", str(out), "--results", str(tmp_path / "none.json")]) == 0
    assert len(json.loads(out.read_text())["rows"]) == 3


def test_interleaved_ab_runner_and_table(tmp_path):
    """The A/B runner times every variant of a case, forward+backward or forward alone, and reports
    ratios to the first one."""
    from benchmarks import ab

    out = tmp_path / "ab.json"
    assert ab.main(["--quick", "--rounds", "2", "--cells", "gru", "--no-report", "--json", str(out)]) == 0
    both, forward = json.loads(out.read_text())["rows"]
    assert (both["mode"], forward["mode"]) == ("fwdbwd", "fwd")
    for row in (both, forward):
        assert row["variants"] == [{"unroll": 1}, {"unroll": 2}] and all(m > 0 for m in row["medians"])
    text = ab.markdown([both], {"cpu_model": "x"}, "cmd")
    assert '`{"unroll": 2}` ms' in text and "| GRU | B=2 T=5 I=3 H=4 | " in text and "(1.00)" in text
    # --only reruns one study and keeps the others' rows of the same --json file, each naming its command
    assert ab.main(["--quick", "--only", "forward", "--rounds", "2", "--cells", "rnn", "--no-report", "--json", str(out)]) == 0
    kept, rerun = json.loads(out.read_text())["rows"]
    assert (kept["question"], kept["network"], rerun["question"], rerun["network"]) == ("smoke", "GRU", "smoke, forward", "RNN")
    assert "--only forward" in rerun["command"] and "--only" not in kept["command"]
    assert "Command: `python -m benchmarks.ab --quick --only forward" in ab.markdown([kept, rerun], {"cpu_model": "x"}, kept["command"])


def test_bf16_stacking_benchmark_runs(tmp_path):
    """The loops of `benchmarks.bf16_stacking` agree and are timed (lax.scan is each ratio's 1.00), and so
    are the whole layers of cells without a fused backward."""
    import jax.numpy as jnp
    import numpy as np

    from benchmarks import bf16_stacking

    w = jnp.eye(4, dtype=jnp.bfloat16) * 0.5
    xs = jnp.linspace(-1, 1, 24, dtype=jnp.float32).reshape(6, 1, 4).astype(jnp.bfloat16)
    outs = [np.asarray(bf16_stacking.elman(scan)(w, xs), np.float32) for scan in bf16_stacking.LOOPS.values()]
    assert all(np.array_equal(outs[0], o) for o in outs[1:])
    out = tmp_path / "bf16.json"
    assert bf16_stacking.main(["--quick", "--reps", "1", "--no-report", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    rows, cell_rows = result["rows"], result["cell_rows"]
    assert len(rows) == 2 * len(bf16_stacking.LOOPS) and all(r["median"] > 0 for r in rows)
    assert len(cell_rows) == len(bf16_stacking.CELLS) * len(bf16_stacking.CELL_VARIANTS)
    assert all(r["median"] > 0 for r in cell_rows)
    text = bf16_stacking.markdown(rows, {"cpu_model": "x"}, "cmd", cell_rows)
    assert "| 6, 2, 4 | bfloat16 | `stacking.scan` | " in text and "(1.00)" in text
    assert "| 6, 2, 4 | bfloat16 | `stacking.scan_recomputing` | " in text
    assert "| 5, 2, 8 | `LSTM(layer_norm=True)` | " in text


def test_xla_flags_study_runs_each_flag_set_in_its_own_process(tmp_path, monkeypatch):
    from benchmarks import xla_flags

    monkeypatch.setattr(xla_flags, "FLAG_SETS", {"XLA default": ""})  # one child process, to keep it short
    out, hlo = tmp_path / "flags.json", tmp_path / "hlo"
    hlo.mkdir()
    assert xla_flags.main(["--quick", "--rounds", "1", "--json", str(out), "--hlo-dir", str(hlo)]) == 0
    (row,) = json.loads(out.read_text())["rows"]
    assert row["flags"] == "XLA default" and row["fwd_ms"] > 0 and row["fwdbwd_ms"] > 0
    assert sorted(p.name for p in hlo.iterdir()) == ["XLA_default_lstm_float32_fwd.hlo", "XLA_default_lstm_float32_fwdbwd.hlo"]


def test_thread_scaling_watch_runs_and_reports(tmp_path):
    """One thread against all cores, round after round, with each round's speed-up and the summary."""
    from benchmarks import cpu_threads
    from jaxrnn.kernels import cpu_recurrence

    if cpu_recurrence.unavailable_reason() is not None:
        assert cpu_threads.main(["--quick", "--no-report"]) == 0  # says it skipped
        return
    out = tmp_path / "threads.json"
    assert cpu_threads.main(["--quick", "--no-report", "--json", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert len(payload["rounds"]) == 2 and payload["threads"] == cpu_recurrence.cores()
    assert all(r["one"] > 0 and r["all"] > 0 and r["speedup"] == r["one"] / r["all"] for r in payload["rounds"])
    assert 0.0 <= payload["contended_share"] <= 1.0
    text = cpu_threads.markdown(payload, {"cpu_model": "x"}, "cmd")
    assert "| 1 thread ms |" in text and "GFLOP/s" in text and not payload["after_torch"]
    pytest.importorskip("torch")
    assert cpu_threads.main(["--quick", "--after-torch", "--no-report", "--json", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert payload["after_torch"] and "after a PyTorch LSTM forward" in cpu_threads.markdown(payload, {"cpu_model": "x"}, "c")
