"""Smoke test of examples/data_parallel.py at tiny size, on 4 simulated CPU devices.

The example sets ``--xla_force_host_platform_device_count`` before importing JAX, which only works in
a fresh process, so it runs as a subprocess (this test process keeps its single device).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def test_example_trains_on_four_simulated_devices(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # the example sets the flag itself
    env["JAX_PLATFORMS"] = "cpu"
    env["MPLBACKEND"] = "Agg"
    argv = ["--out", str(tmp_path), "--devices", "4", "--steps", "6", "--length", "6", "--hidden", "4", "--batch", "8"]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "data_parallel.py"), *argv],
        check=False, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["devices"] == 4
    assert m["shards"] == [{"device": i, "rows": [2 * i, 2 * i + 2], "shape": [2, 6, 2]} for i in range(4)]
    assert "cpu:3: rows   6..  7, shard shape (2, 6, 2)" in proc.stdout
    assert len(m["loss_sharded"]) == len(m["loss_single"]) == 6
    # Six steps are far too few for training to amplify rounding: the runs agree throughout.
    np.testing.assert_allclose(m["loss_sharded"], m["loss_single"], rtol=1e-6, atol=1e-7)
    assert m["agree_steps_sharded"] == m["agree_steps_reversed"] == 6
    assert m["max_param_diff_sharded"] < 1e-6 and m["max_param_diff_reversed"] < 1e-6
    assert abs(m["eval_sharded"] - m["eval_single"]) < 1e-6
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["ckpt_000000003.msgpack", "ckpt_000000006.msgpack"]
    assert (tmp_path / "losses.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
