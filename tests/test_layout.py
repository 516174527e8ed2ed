"""The conversation layout end to end: trained with it, a judge grades with it, from a checkpoint
through ``Judge.load`` and through test/predict whatever the data config says."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from conftest import small_records
from datamodules import JudgeDataModule
from datamodules.prompt import PromptEncoder
from datamodules.records import validate_record
from phudge_lightning.model.module import JudgeModule


@pytest.fixture(scope="module")
def conversation_judge(tiny_llama_dir, small_records_file, tmp_path_factory):
    model = dict(backbone=str(tiny_llama_dir), head="regression", lora={"r": 2, "alpha": 4, "dropout": 0.0}, lr=1e-3)
    data = JudgeDataModule(data=str(small_records_file), backbone=str(tiny_llama_dir), batch_size=4,
                                        max_length=200, limit=12, layout="conversation")
    trainer = L.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0)
    trainer.fit(JudgeModule(**model), data)
    ckpt = tmp_path_factory.mktemp("layout") / "judge.ckpt"
    trainer.save_checkpoint(ckpt)
    return ckpt, data


def test_training_reads_conversations(conversation_judge):
    _, data = conversation_judge
    assert data.prompt_settings["layout"] == "conversation"
    text = data.tokenizer.decode(data.sets["train"][0]["input_ids"])
    assert "###Task Description:" not in text and "###Feedback:" not in text


def test_judge_load_grades_in_the_checkpoints_layout(conversation_judge):
    from phudge_lightning.judge import Judge

    ckpt, _ = conversation_judge
    judge = Judge.load(str(ckpt))
    assert judge.encoder.layout == "conversation"
    record = validate_record({"instruction": "Why rest steak?", "response": "The juice settles."}, require_score=False)
    score = judge.grade(record.instruction, record.response).score
    module = judge.module
    for layout, same in (("conversation", True), ("prometheus", False)):
        ids = PromptEncoder(module.tokenizer, max_length=200, layout=layout).encode(record).input_ids
        with torch.no_grad():
            raw = module(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long))
        assert (abs(float(module.head.scores(raw)[0]) - score) < 1e-4) == same, layout


def test_predict_adopts_the_judges_layout(conversation_judge, tiny_llama_dir, tmp_path):
    from conftest import write_jsonl

    ckpt, _ = conversation_judge
    rows = write_jsonl(tmp_path / "rows.jsonl", small_records(4))
    data = JudgeDataModule(predict_data=str(rows), backbone=str(tiny_llama_dir))  # the default layout
    data.setup("predict")
    before = data.sets["predict"][0]["input_ids"]
    state = torch.load(ckpt, weights_only=False)
    data.use_prompt_settings(state["JudgeDataModule"]["prompt_settings"])
    after = data.tokenizer.decode(data.sets["predict"][0]["input_ids"])
    assert data.hparams.layout == "conversation" and data.max_length == 200
    assert "###Task Description:" in data.tokenizer.decode(before) and "###Task Description:" not in after


def test_phudge_data_measures_either_layout_and_takes_every_format(tiny_llama_dir, small_records_file, capsys):
    from phudge_lightning.data.summary import main, summarize

    prometheus, _ = summarize(str(small_records_file), backbone=str(tiny_llama_dir))
    conversation, _ = summarize(str(small_records_file), backbone=str(tiny_llama_dir), layout="conversation")
    # The conversation has no task description: every prompt, so the 99th percentile, is shorter.
    assert conversation["valid"] == prometheus["valid"] == 40
    assert conversation["p99_tokens"] < prometheus["p99_tokens"]
    assert main(["--data", str(small_records_file), "--backbone", "none", "--format", "records", "--json"]) == 0
    assert '"valid": 40' in capsys.readouterr().out
    with pytest.raises(SystemExit):  # a format nobody registered is refused by name
        main(["--data", str(small_records_file), "--format", "no_such_format"])
