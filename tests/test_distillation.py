"""``Distil``: a teacher judge's scores of the same prompts as the training targets."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from conftest import judge_module
from datamodules import JudgeDataModule
from phudge_lightning.formats import load, save
from phudge_lightning.model.distillation import Distil


class Spy(L.Callback):
    """Each batch as trained on, the MSE of the judge's scores against its teacher's just before
    the step (the same dropout draws: the generator is put back), and the step's loss."""

    def __init__(self):
        self.batches, self.expected, self.losses = [], [], []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        state = torch.get_rng_state()
        with torch.no_grad():
            raw = pl_module(batch["input_ids"], batch["attention_mask"])
        torch.set_rng_state(state)
        self.expected.append(float(torch.mean((raw - batch["teacher_score"]) ** 2)))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.batches.append({k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in batch.items()})
        self.losses.append(float(outputs["loss"] if isinstance(outputs, dict) else outputs))


def fit(student, teacher_path, data_file, backbone, callbacks, layout="prometheus", steps=3):
    data = JudgeDataModule(data=str(data_file), backbone=str(backbone), batch_size=4, val_fraction=0.2, layout=layout)
    trainer = L.Trainer(accelerator="cpu", max_steps=steps, limit_val_batches=0, num_sanity_val_steps=0, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[Distil(str(teacher_path)), *callbacks])
    trainer.fit(student, data)
    return data


def test_every_training_row_gets_the_teachers_score_and_the_loss_is_against_it(tiny_bert_dir, small_records_file, tmp_path):
    teacher_path = save(judge_module(tiny_bert_dir, "regression", seed=1, pooling="mean"), tmp_path / "teacher", "judge")
    student, spy = judge_module(tiny_bert_dir, "regression", pooling="pooler"), Spy()
    fit(student, teacher_path, small_records_file, tiny_bert_dir, [spy])
    teacher = load(teacher_path)
    assert len(spy.batches) == 3
    for batch in spy.batches:
        expected = teacher.predict_scores(batch["input_ids"], batch["attention_mask"])["score"]
        assert torch.allclose(batch["teacher_score"], expected, atol=1e-5)
        assert not torch.allclose(batch["teacher_score"], batch["score"], atol=0.1)  # not the labels
    # Each step's loss is the judge's loss (MSE) against the teacher, not against the labels.
    assert spy.losses == pytest.approx(spy.expected, rel=1e-5)


def test_a_teacher_that_reads_another_layout_is_refused(tiny_bert_dir, small_records_file, tmp_path):
    teacher = judge_module(tiny_bert_dir, "regression", seed=1)
    teacher.prompt_settings = {"layout": "conversation", "use_chat_template": True, "max_length": 64}
    teacher_path = save(teacher, tmp_path / "teacher", "judge")
    with pytest.raises(ValueError, match="other layout"):
        fit(judge_module(tiny_bert_dir, "regression"), teacher_path, small_records_file, tiny_bert_dir, [])


def test_only_a_regression_judge_learns_from_scores(tiny_bert_dir, small_records_file, tmp_path):
    teacher_path = save(judge_module(tiny_bert_dir, "regression", seed=1), tmp_path / "teacher", "judge")
    with pytest.raises(ValueError, match="regression head"):
        fit(judge_module(tiny_bert_dir, "classification"), teacher_path, small_records_file, tiny_bert_dir, [])
