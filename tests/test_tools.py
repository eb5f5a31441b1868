"""The prepared GPU check (tools/gpu_check.sh) runs end to end: on the CPU, in its dry mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_check_runs_dry_on_the_cpu(data_root, tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "HYPERMAML_DATA": str(data_root)}
    done = subprocess.run(["bash", "tools/gpu_check.sh", "--dry", str(tmp_path)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = (tmp_path / "summary.txt").read_text()
    for step in ("machine", "2. bench", "3. two processes", "4. shipped checkpoints", "done"):
        assert step in summary
    assert "cross_char_1s_hypermaml: cpu" in summary
    bench = json.loads((tmp_path / "bench_omniglot_bf16.json").read_text())
    assert bench["rows"][0]["extra"]["precision"] == "bf16"
    assert bench["rows"][0]["extra"]["encoder"] == "conv4 on 1x28x28 images"
    two = json.loads((tmp_path / "bench_2proc.json").read_text())
    extra = two["rows"][0]["extra"]
    assert extra["processes"] == 2 and extra["gradient_mb"] > 1
    assert 0 < extra["communication_share"] < 1
