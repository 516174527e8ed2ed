"""The trainable judge: ``JudgeModule`` (a backbone, LoRA, a registered head and loss) and its callbacks."""

from phudge_lightning.model.module import JudgeModule

__all__ = ["JudgeModule"]
