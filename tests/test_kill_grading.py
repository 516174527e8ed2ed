"""Batch outputs survive crashes: atomic files, and ``phudge predict`` killed with kill -9.

(``phudge grade``'s own kill -9 test, with resumption, is in test_grading.py.)

``phudge predict`` does not resume: a rerun predicts every row again, into fresh shards. What
holds after any number of kills is that ``predictions.jsonl`` is either absent or whole: it is
merged into a temporary file and renamed, so a reader never takes a half-written file, or the
half line a kill left at the end of a shard, for results.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import train_tiny_judge
from phudge_lightning import io
from phudge_lightning.io import atomic_write_json, atomic_write_text

REPO = Path(__file__).resolve().parents[1]
LORA = {"r": 2, "alpha": 4, "dropout": 0.0}


def litter(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# -- atomic files --------------------------------------------------------------------------------
def test_atomic_write_json_keeps_the_old_file_when_serialising_fails(tmp_path):
    path = tmp_path / "metrics.json"
    atomic_write_json(path, {"pearson": 0.5})
    with pytest.raises(TypeError):
        atomic_write_json(path, {"pearson": 0.7, "bad": object()})
    assert json.loads(path.read_text()) == {"pearson": 0.5}
    assert litter(tmp_path) == []


def test_atomic_write_json_keeps_the_old_file_when_the_write_fails_midway(tmp_path, monkeypatch):
    """The new text is half on disk (in the temporary file) when the disk fails."""
    path = tmp_path / "metrics.json"
    atomic_write_json(path, {"pearson": 0.5, "rows": list(range(100))})
    old = path.read_bytes()

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(io.os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space"):
        atomic_write_json(path, {"pearson": 0.9, "rows": list(range(10_000))})
    assert path.read_bytes() == old
    assert litter(tmp_path) == []


def test_atomic_write_killed_midway_leaves_the_old_file(tmp_path):
    """kill -9 while the new text is being written: the old file is still whole."""
    path, marker = tmp_path / "report.json", tmp_path / "writing"
    atomic_write_json(path, {"version": 1})
    script = textwrap.dedent(f"""
        import os, time
        from pathlib import Path
        from phudge_lightning import io
        def stall(fd):  # the text is written, not yet on disk nor renamed
            Path({str(marker)!r}).touch()
            time.sleep(60)
        io.os.fsync = stall
        io.atomic_write_json({str(path)!r}, {{"version": 2, "rows": list(range(100000))}})
    """)
    process = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert json.loads(path.read_text()) == {"version": 1}
    atomic_write_text(path, '{"version": 3}\n')  # the litter of the killed write is harmless
    assert json.loads(path.read_text()) == {"version": 3}


def test_an_export_cut_short_is_not_taken_for_a_judge(tmp_path, tiny_llama_dir, monkeypatch):
    """``judge.json`` is written last: a folder without it is refused, not half loaded."""
    from phudge_lightning.formats import load, save
    from phudge_lightning.formats.judge_folder import CONFIG, WEIGHTS
    from phudge_lightning.model.module import JudgeModule

    module = JudgeModule(backbone=str(tiny_llama_dir), head="regression", lora=LORA)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed while saving the tokenizer")

    monkeypatch.setattr(module.tokenizer, "save_pretrained", crash)
    with pytest.raises(KeyboardInterrupt):
        save(module, tmp_path / "judge", "judge")
    assert (tmp_path / "judge" / WEIGHTS).exists() and not (tmp_path / "judge" / CONFIG).exists()
    from phudge_lightning.formats import CheckpointError

    with pytest.raises(CheckpointError, match="export cut short"):
        load(tmp_path / "judge")


# -- phudge predict, killed ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tiny_llama_dir, small_records_file, tmp_path_factory):
    """A classification judge after one step: its checkpoint and a predict config."""
    return train_tiny_judge(tmp_path_factory.mktemp("predict-kill"), tiny_llama_dir, small_records_file, max_length=256,
                            limit=8, predict_data={"eval_batch_size": 2})


def predict_input(path: Path, n: int) -> list[dict]:
    rows = [{"id": f"p{i}", "instruction": f"Question {i}?", "response": "word " * (1 + (i * 7) % 23)} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def check_whole(merged: Path, rows: list[dict]) -> list[dict]:
    """Every input row exactly once, in input order, each line a complete result."""
    text = merged.read_text()
    assert text.endswith("\n")
    out = [json.loads(line) for line in text.splitlines()]
    assert [r["index"] for r in out] == list(range(len(rows)))
    assert [r["id"] for r in out] == [r["id"] for r in rows]
    assert all(1 <= r["score"] <= 5 and len(r["probabilities"]) == 5 for r in out)
    return out


def shard_lines(output: Path) -> int:
    return sum(p.read_bytes().count(b"\n") for p in output.glob("shard-*.jsonl"))


@pytest.mark.slow
def test_predict_killed_at_random_points_ends_with_every_row_once(tmp_path, trained):
    from phudge_lightning.judge import Judge
    from phudge_lightning.predict.writer import MERGED

    config, ckpt = trained
    source, output = tmp_path / "in.jsonl", tmp_path / "predictions"
    rows = predict_input(source, 300)
    command = [sys.executable, "-m", "phudge_lightning.cli", "predict", "--config", str(config), "--ckpt_path",
               str(ckpt), "--data.predict_data", str(source), "--predict_writer.output_dir", str(output),
               "--return_predictions", "false"]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    rng, kills = random.Random(8), 0
    with (tmp_path / "stderr.txt").open("wb") as log:
        for _ in range(2):
            process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=log)
            deadline = time.monotonic() + 300
            while process.poll() is None and shard_lines(output) == 0 and time.monotonic() < deadline:
                time.sleep(0.01)  # wait for the first batch, so the kill lands mid-run
            time.sleep(rng.uniform(0.0, 0.3))
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=60)
                kills += shard_lines(output) < len(rows)  # it was cut short, not merely stopped
            merged = output / MERGED
            if merged.exists():  # absent or whole, never half
                check_whole(merged, rows)
            (output / MERGED).unlink(missing_ok=True)
        final = subprocess.run(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=log, timeout=600)
    assert final.returncode == 0, (tmp_path / "stderr.txt").read_text()[-3000:]
    assert kills >= 1
    out = check_whole(output / MERGED, rows)
    expected = Judge.load(ckpt, device="cpu").grade_many(rows[:20])
    assert [r["score"] for r in out[:20]] == pytest.approx([g.score for g in expected], abs=1e-4)
