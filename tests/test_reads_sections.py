"""A judge grades as it was trained: trained on prompts that never held a rubric (or a reference
answer), it leaves them out when grading; trained with them, it keeps them."""

from __future__ import annotations

import pytest

from conftest import write_jsonl
from datamodules.judge_datamodule import JudgeDataModule
from datamodules.prompt import PromptEncoder
from datamodules.records import Record
from tiny import tiny_tokenizer

RUBRIC = {"criteria": "Correct?", **{f"score{k}_description": f"Level {k}." for k in range(1, 6)}}


def test_encoder_leaves_out_what_the_judge_does_not_read():
    tokenizer = tiny_tokenizer(chat=False)
    full = Record("Why rest a steak?", "It keeps the juice in.", rubric=RUBRIC, reference_answer="The juice settles.")
    bare = Record("Why rest a steak?", "It keeps the juice in.")
    reads_all = PromptEncoder(tokenizer, layout="conversation")
    reads_none = PromptEncoder(tokenizer, layout="conversation", reads_rubric=False, reads_reference=False)
    assert reads_all.encode(full).input_ids != reads_all.encode(bare).input_ids
    with pytest.warns(UserWarning, match="trained without rubric or reference_answer"):
        assert reads_none.encode(full).input_ids == reads_all.encode(bare).input_ids
    no_reference = PromptEncoder(tokenizer, layout="conversation", reads_reference=False)
    assert no_reference.text(no_reference.as_read(full)) == reads_all.text(Record(full.instruction, full.response, rubric=RUBRIC))


def records_file(path, with_rubric: bool):
    rows = [{"instruction": f"Question {i}?", "response": f"Answer {i}.", "score": 1 + i % 5,
             **({"rubric": RUBRIC} if with_rubric else {})} for i in range(20)]
    return write_jsonl(path, rows)


@pytest.mark.parametrize("with_rubric", [False, True])
def test_data_module_records_what_training_prompts_held(tiny_llama_dir, tmp_path, with_rubric):
    data = records_file(tmp_path / "records.jsonl", with_rubric)
    dm = JudgeDataModule(backbone=str(tiny_llama_dir), sources=[{"data": str(data)}], max_length=64,
                                      layout="conversation")
    dm.setup("fit")
    assert dm.prompt_settings["reads_rubric"] is with_rubric
    assert dm.prompt_settings["reads_reference"] is False
    # read back from a checkpoint's settings, a fresh module builds prompts the same way
    other = JudgeDataModule(backbone=str(tiny_llama_dir), max_length=64, layout="conversation")
    other.use_prompt_settings(dm.prompt_settings)
    assert other.reads == {"reads_rubric": with_rubric, "reads_reference": False}
