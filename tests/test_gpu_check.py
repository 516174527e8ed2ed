"""The prepared GPU check (``phudge_lightning/bench/gpu/check.sh``) runs on CPU with ``--cpu``:
the speed bench's pieces and every step of the paper's path, each one PASS line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VICUNA = REPO.parent / "shared/data/benchmarks/vicuna_eval.json"
STEPS = ("speed bench", "fit", "resume from last.ckpt", "validate --ckpt_path", "grade", "evaluate vicuna",
         "export, grade the export", "serve one /grade", "predict --ckpt_path")


@pytest.mark.slow
@pytest.mark.skipif(not VICUNA.exists(), reason="the paper's path evaluates on ../shared's vicuna_eval.json")
def test_the_gpu_check_passes_every_step_on_cpu(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    done = subprocess.run(["bash", "phudge_lightning/bench/gpu/check.sh", "--cpu"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1800)
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stdout + done.stderr[-3000:] + (tmp_path / "paper_path.log").read_text()[-3000:]
    for step in STEPS:
        assert any(line.startswith(f"PASS {step} (") for line in lines), step
    assert not any(line.startswith("FAIL") for line in lines)
    figures = [json.loads(line) for line in lines[lines.index("figures:") + 1:]]
    bench, paper = figures
    assert bench["judge_per_s"] > 0 and bench["judge_over_forward"] > 0
    assert paper["passed"] == paper["steps"] == 8
    whole, resumed = paper["paper_path"]["val_loss_whole_resumed"]
    assert resumed == pytest.approx(whole, rel=0.02)
