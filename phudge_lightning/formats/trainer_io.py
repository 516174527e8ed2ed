"""Lightning's ``Trainer`` reading every format that holds one judge's checkpoint."""

from __future__ import annotations

from lightning.fabric.plugins import CheckpointIO, TorchCheckpointIO

from phudge_lightning.formats.registry import kind_of, read_checkpoint


class JudgeCheckpointIO(CheckpointIO):
    """``Trainer.validate/test/predict(ckpt_path=...)`` from any format with a checkpoint, under
    any strategy but DeepSpeed's (which reads its own folders, and only those): a Lightning file
    goes to ``inner`` unchanged, the other formats are read into Lightning's form (weights and
    hyper-parameters; no optimizer state, so they cannot resume a fit). Saving, removing and
    teardown are ``inner``'s, so checkpoints are written as before.

        Trainer(plugins=[JudgeCheckpointIO()]).validate(module, data, ckpt_path="best.ckpt/")
    """

    def __init__(self, inner: CheckpointIO | None = None):
        self.inner = inner or TorchCheckpointIO()

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        return self.inner.save_checkpoint(checkpoint, path, storage_options=storage_options)

    def load_checkpoint(self, path, map_location=None, weights_only=None):
        if kind_of(path).name == "lightning":
            return self.inner.load_checkpoint(path, weights_only=weights_only)
        return read_checkpoint(path)

    def remove_checkpoint(self, path):
        return self.inner.remove_checkpoint(path)

    def teardown(self):
        return self.inner.teardown()
