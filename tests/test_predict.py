"""``phudge predict``: per-rank shards written per batch, merged into one file in input order."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from conftest import train_tiny_judge
from phudge_lightning.predict.writer import MERGED, merge_shards, prediction_rows, shard_name

REPO = Path(__file__).resolve().parents[1]


def test_prediction_rows():
    rows = prediction_rows({"index": torch.tensor([4, 1]), "score": torch.tensor([2.5, float("nan")]),
                            "probabilities": torch.tensor([[0.2] * 5, [0.1, 0.2, 0.3, 0.2, 0.2]]), "text": ["a", "b"]})
    assert rows[0] == {"index": 4, "score": 2.5, "probabilities": [0.2] * 5, "confidence": 0.2, "feedback": "a"}
    assert rows[1] == {"index": 1, "score": None, "probabilities": [0.1, 0.2, 0.3, 0.2, 0.2], "confidence": 0.3,
                       "feedback": "b"}  # score null, never left out


def test_merge_in_index_order_first_copy_wins(tmp_path):
    shards = [tmp_path / shard_name(r, 2) for r in range(2)]
    shards[0].write_text('{"index": 2, "score": 1.0}\n{"index": 0, "score": 2.0}\n')
    # rank 1 repeats index 2 (the sampler evens the ranks out) and ends with a line a crash cut short
    shards[1].write_text('{"index": 1, "score": 3.0}\n{"index": 2, "score": 9.0}\n{"index": 3, "sc')
    output = tmp_path / MERGED
    inputs = [{"id": f"r{i}", "instruction": "I"} for i in range(3)]
    assert merge_shards(shards, output, expected=3, inputs=inputs) == 3
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [(r["id"], r["index"], r["score"]) for r in rows] == [("r0", 0, 2.0), ("r1", 1, 3.0), ("r2", 2, 1.0)]
    with pytest.raises(RuntimeError, match="lack 2 of 5"):
        merge_shards(shards, tmp_path / "other.jsonl", expected=5)


@pytest.fixture(scope="module")
def trained(tiny_llama_dir, small_records_file, tmp_path_factory):
    """A classification judge after one training step: its checkpoint and the config that built it."""
    return train_tiny_judge(tmp_path_factory.mktemp("predict"), tiny_llama_dir, small_records_file, max_length=512,
                            limit=16, predict_data={"batch_size": 2})


def predict_input(path: Path, n: int = 11) -> Path:
    rows = [{"id": f"p{i}", "instruction": f"Question {i}?", "response": "word " * (1 + (i * 5) % 9)} for i in range(n)]
    rows[3]["rubric"] = "Is it right?"
    rows[5]["response"], rows[8]["response"] = "", " \n"  # empty answers: predicted like any other
    # Saved by a Windows editor: a byte-order mark first, which is not data.
    path.write_bytes(b"\xef\xbb\xbf" + "".join(json.dumps(r) + "\n" for r in rows).encode("utf-8"))
    return path


def check_predictions(output: Path, source: Path, ckpt: Path) -> list[dict]:
    from phudge_lightning.judge import Judge

    rows = [json.loads(line) for line in (output / MERGED).read_text().splitlines()]
    inputs = [json.loads(line) for line in source.read_text(encoding="utf-8-sig").splitlines()]
    assert [r["index"] for r in rows] == list(range(len(inputs)))
    assert [r["id"] for r in rows] == [x["id"] for x in inputs]  # input order, with the row's own fields
    assert rows[3]["rubric"] == "Is it right?"
    assert all(len(r["probabilities"]) == 5 and r["confidence"] == max(r["probabilities"]) for r in rows)
    assert (rows[5]["response"], rows[8]["response"]) == ("", " \n")
    expected = Judge.load(ckpt, device="cpu").grade_many(inputs)
    assert [r["score"] for r in rows] == pytest.approx([g.score for g in expected], abs=1e-4)
    return rows


def test_predict_one_device(tmp_path, trained, monkeypatch):
    from phudge_lightning.cli import main

    monkeypatch.setattr(sys, "argv", sys.argv[:1])  # (LightningCLI warns when it sees pytest's own arguments)
    config, ckpt = trained
    source, output = predict_input(tmp_path / "in.jsonl"), tmp_path / "predictions"
    main(["predict", "--config", str(config), "--ckpt_path", str(ckpt), "--data.predict_data", str(source),
          "--predict_writer.output_dir", str(output)])
    check_predictions(output, source, ckpt)
    shard = (output / shard_name(0, 1)).read_text().splitlines()
    assert sorted(json.loads(line)["index"] for line in shard) == list(range(11))  # length order, every row once


# A checkpoint written before the data module was named JudgeDataModule holds its state under
# the former name: it must still reach the data module.
@pytest.mark.parametrize("state_key", ["JudgeDataModule", "FeedbackCollectionDataModule"])
def test_predict_cuts_prompts_at_the_checkpoint_budget(tmp_path, trained, monkeypatch, state_key):
    # The config sets no data.max_length: the checkpoint's budget applies, not the tokenizer's limit.
    from phudge_lightning.cli import lightning_cli

    monkeypatch.setattr(sys, "argv", sys.argv[:1])
    config, ckpt = trained
    plain = yaml.safe_load(config.read_text())
    plain["data"].pop("max_length")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(plain))
    state = torch.load(ckpt, weights_only=False)
    # The data module's state holds the prompt settings: a judge trained on short prompts.
    state["JudgeDataModule"]["prompt_settings"]["max_length"] = 48
    state[state_key] = state.pop("JudgeDataModule")
    torch.save(state, tmp_path / "short.ckpt")
    source = predict_input(tmp_path / "in.jsonl")
    cli = lightning_cli(["--config", str(tmp_path / "config.yaml"), "--data.predict_data", str(source)], run=False)
    cli.datamodule.setup("predict")
    assert cli.datamodule.max_length > 48
    cli.trainer.predict(cli.model, datamodule=cli.datamodule, ckpt_path=str(tmp_path / "short.ckpt"))
    assert cli.datamodule.max_length == 48 and cli.datamodule.sets["predict"].encoder.max_length == 48
    assert max(cli.datamodule.lengths["predict"]) <= 48


def test_writer_without_output_dir_writes_nothing(tmp_path):
    from phudge_lightning.predict.writer import JudgePredictionWriter

    writer = JudgePredictionWriter()
    writer.setup(None, None, "predict")
    writer.write_on_batch_end(None, None, {"index": torch.tensor([0]), "score": torch.tensor([1.0])}, None, None, 0)
    assert writer.merged_path is None and list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_predict_two_processes_ddp(tmp_path, trained):
    config, ckpt = trained
    source, output = predict_input(tmp_path / "in.jsonl"), tmp_path / "predictions"
    command = [sys.executable, "-m", "phudge_lightning.cli", "predict", "--config", str(config), "--ckpt_path", str(ckpt),
               "--data.predict_data", str(source), "--predict_writer.output_dir", str(output),
               "--trainer.devices", "2", "--trainer.strategy", "ddp", "--return_predictions", "false"]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    check_predictions(output, source, ckpt)
    shards = [[json.loads(line)["index"] for line in (output / shard_name(r, 2)).read_text().splitlines()] for r in range(2)]
    assert shards[0] and shards[1] and set(shards[0]) | set(shards[1]) == set(range(11))
