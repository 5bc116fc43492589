"""`jaxrnn train` and `jaxrnn demo` (tiny sizes): what they print and write, and resuming from a checkpoint."""

from __future__ import annotations

import json
import runpy
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from jaxrnn.cli import main
from jaxrnn.train import list_checkpoints

PNGS = {"profiles_init.png", "profiles_trained.png", "loss_curves.png", "profile_heatmaps.png"}


def test_train_writes_results_and_resumes(tmp_path, capsys):
    args = ["train", "--cell", "gru", "--task", "adding", "--length", "6", "--hidden", "3", "--batch-size", "4",
            "--eval-every", "2", "--checkpoint-every", "2", "--checkpoint-dir", str(tmp_path / "ck"), "--no-progress"]
    assert main([*args, "--steps", "4", "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "baseline loss 0.1667" in printed and "| gru |" in printed
    assert {p.name for p in (tmp_path / "out").iterdir()} == PNGS | {"results.json"}
    run = json.loads((tmp_path / "out" / "results.json").read_text())["trained"][0]
    profile = np.asarray(run["profile_init_log10"])
    assert run["ratio_init"] == pytest.approx(profile[0] - profile[-1], abs=1e-4)  # log10(n_0 / n_{T-1})
    assert f"{run['test_loss']:.4f}" in printed
    assert [s for s, _ in list_checkpoints(tmp_path / "ck")][-1] == 4

    # Asked for more steps with the same checkpoint directory, it continues from step 4.
    assert main([*args, "--steps", "6"]) == 0
    assert [s for s, _ in list_checkpoints(tmp_path / "ck")][-1] == 6


def _demo_tiny(tmp_path, capsys, trained, init_only):
    assert main(["demo", "--steps", "3", "--length", "6", "--hidden", "3", "--batch-size", "4", "--out", str(tmp_path), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    for name in (*trained, *init_only, "MSE = 1/6 = 0.1667"):
        assert name in printed
    assert PNGS | {"results.json"} <= {p.name for p in tmp_path.iterdir()}
    summary = json.loads((tmp_path / "results.json").read_text())
    assert [r["name"] for r in summary["trained"]] == list(trained)
    assert set(summary["init_only"]) == set(init_only)
    for r in summary["trained"]:
        after = np.asarray(r["profile_trained_log10"])
        assert r["ratio_trained"] == pytest.approx(after[0] - after[-1], abs=1e-4)
        assert r["baseline"] == pytest.approx(1 / 6)


def test_demo_tiny_one_model_each(tmp_path, capsys, monkeypatch):
    """The demo's whole pipeline with one trained and one init-only model (the full set: slow test)."""
    import jaxrnn.train.demo as demo

    monkeypatch.setattr(demo, "TRAINED", (("LSTM", "lstm", False),))
    monkeypatch.setattr(demo, "INIT_ONLY", (("GRU (chrono)", "gru", True),))
    _demo_tiny(tmp_path, capsys, ["LSTM"], ["GRU (chrono)"])


@pytest.mark.slow
def test_demo_tiny_all_models(tmp_path, capsys):
    _demo_tiny(tmp_path, capsys, ["SimpleRNN", "LSTM", "GRU"], ["LSTM (chrono)", "GRU (chrono)"])


def test_bad_arguments_exit_with_usage_and_module_entry(monkeypatch, capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--steps", "0"])
    assert info.value.code == 2 and "must be a positive integer" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--cell", "transformer"])
    with pytest.raises(SystemExit) as info:
        main(["train", "--cell", "simple", "--chrono"])
    assert info.value.code == 2 and "--chrono" in capsys.readouterr().err
    monkeypatch.setattr(sys, "argv", ["jaxrnn", "--help"])
    with pytest.raises(SystemExit) as info:
        runpy.run_module("jaxrnn", run_name="__main__")
    assert info.value.code == 0 and "demo" in capsys.readouterr().out
