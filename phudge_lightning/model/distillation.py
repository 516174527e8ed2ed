"""Distillation from a teacher judge: a Lightning callback that gives every training row the
teacher's score of the same prompt as its target.

With ``Distil(teacher)`` among the trainer's callbacks, a regression judge's training loss is

    L = mean_i loss(s_student(x_i), s_teacher(x_i))

over every row of the batch (records and both answers of each pair), ``loss`` being the
judge's own (``mse`` by default); the data's labels are then used only to validate. The teacher
reads the student's tokens, so it must share the tokenizer and the prompt settings: a judge of
another backbone or layout would be scoring text it was not trained to read, and is refused.

Why: a judge that cannot be exported (the shipped MiniLM judge pools by the mean, which no
transformers class computes) can teach one that can (pooled through BERT's pooler), which keeps
what the teacher learnt instead of learning it again from the labels.

    trainer:
      callbacks:
        - class_path: phudge_lightning.model.distillation.Distil
          init_args: {teacher: default}
"""

from __future__ import annotations

import lightning as L
import torch


class Distil(L.Callback):
    def __init__(self, teacher: str = "default"):
        """``teacher``: any judge ``--checkpoint`` takes (``default``, a checkpoint, an exported folder)."""
        self.teacher_path = teacher
        self.teacher = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage != "fit":
            return
        from phudge_lightning.formats import load

        if pl_module.head.name != "regression":
            raise ValueError(f"Distil trains a regression head on the teacher's scores; this judge's head is "
                             f"{pl_module.head.name!r}")
        teacher = load(self.teacher_path)
        if teacher.tokenizer.get_vocab() != pl_module.tokenizer.get_vocab():
            raise ValueError(f"the teacher {self.teacher_path} has another tokenizer than the judge it teaches: "
                             "it would read other tokens")
        data = getattr(trainer, "datamodule", None)
        ours, theirs = getattr(data, "prompt_settings", None), getattr(teacher, "prompt_settings", {})
        if ours is not None:
            differ = [k for k in ("layout", "use_chat_template") if k in theirs and theirs[k] != ours.get(k)]
            if differ:
                raise ValueError(f"the teacher {self.teacher_path} reads prompts with other {', '.join(differ)} "
                                 f"({', '.join(f'{k}={theirs[k]!r}' for k in differ)}) than this training")
        self.teacher = teacher.eval().requires_grad_(False)

    def on_fit_start(self, trainer, pl_module) -> None:
        self.teacher.to(pl_module.device)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        scores = self.teacher.predict_scores(batch["input_ids"], batch["attention_mask"])["score"]
        # (predict_scores runs in inference mode: a clone is a plain tensor the loss may keep.)
        batch["teacher_score"] = scores.float().clone()
