"""Small Lightning callbacks of the project."""

from __future__ import annotations

import lightning as L
import torch


class LossSummary(L.Callback):
    """Print the training loss of the first and the last logged step when fit ends, so a
    short run shows at a glance whether the judge learned anything."""

    def __init__(self):
        self.first: tuple[int, float] | None = None
        self.last: tuple[int, float] | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor) and torch.isfinite(loss):
            point = (trainer.global_step, float(loss))
            self.first = self.first or point
            self.last = point

    def on_fit_end(self, trainer, pl_module) -> None:
        if self.first and trainer.is_global_zero:
            print(f"train/loss: {self.first[1]:.4f} at step {self.first[0]} -> {self.last[1]:.4f} at step {self.last[0]}")
