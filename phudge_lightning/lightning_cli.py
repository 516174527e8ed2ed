"""``PhudgeCLI``: the LightningCLI of ``phudge fit/validate/test/predict`` over ``JudgeModule``
and ``JudgeDataModule``, with the model's and the data's shared settings linked."""

from __future__ import annotations

import importlib

from lightning.pytorch.cli import LightningCLI


def head_uses_lm_head(head: str, plugins: list[str] | None = None) -> bool:
    """Whether the head (registered, or by a plugin module imported first) predicts with the
    backbone's language-model head: the data module then adds the completion to learn."""
    import heads

    for module in plugins or []:
        importlib.import_module(module)
    return bool(heads.get_head(head).uses_lm_head)


class PhudgeCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        # One backbone for model and data: the tokenizer must be the model's. The data module
        # asks the head what it needs rather than reading its name.
        parser.link_arguments("model.backbone", "data.backbone")
        parser.link_arguments(("model.head", "model.plugins"), "data.uses_lm_head", compute_fn=head_uses_lm_head)
        # One scale for the data's checks and prompts, the heads, the losses and the metrics.
        parser.link_arguments("model.score_range", "data.score_range")
        # The length-grouped batch sampler shards over ranks itself.
        parser.set_defaults({"trainer.use_distributed_sampler": False})
        # phudge predict: --predict_writer.output_dir DIR writes per-rank shards and a merged file.
        from phudge_lightning.predict.writer import JudgePredictionWriter

        parser.add_lightning_class_args(JudgePredictionWriter, "predict_writer")

    # --ckpt_path of every format with a checkpoint (phudge_lightning.formats), checked before Lightning reads it.
    def before_fit(self) -> None:
        self._any_checkpoint("fit")

    def before_validate(self) -> None:
        self._any_checkpoint("validate")

    def before_test(self) -> None:
        self._any_checkpoint("test")

    def before_predict(self) -> None:
        self._any_checkpoint("predict")

    def _any_checkpoint(self, subcommand: str) -> None:
        """A ``--ckpt_path`` that is none of the kinds is refused in one line. Under DeepSpeed,
        Lightning reads the folder itself (its engine restores weights, optimizer and loops).
        Under any other strategy, ``JudgeCheckpointIO`` reads every kind for validate, test and
        predict; fit resumes from a Lightning file only: the other kinds hold no optimizer state
        that these strategies can take (ZeRO's is partitioned and flattened)."""
        from lightning.pytorch.strategies import DeepSpeedStrategy

        from phudge_lightning.formats import CheckpointError
        from phudge_lightning.formats.registry import checkpoint_kind
        from phudge_lightning.formats.trainer_io import JudgeCheckpointIO

        path = self.config_init[subcommand].get("ckpt_path")
        if not path or str(path) in ("last", "best", "hpc") or str(path).startswith("registry"):
            return  # Lightning's own names for checkpoints it finds
        kind = checkpoint_kind(path)
        strategy = self.trainer.strategy
        if isinstance(strategy, DeepSpeedStrategy):
            return
        if subcommand == "fit" and kind.name != "lightning":
            raise CheckpointError(f"fit --ckpt_path {path}: resuming needs a Lightning .ckpt file, or a DeepSpeed "
                                  f"folder under DeepSpeedStrategy; this is {kind.looks_like}, which holds no "
                                  "optimizer state this strategy can take")
        if not isinstance(strategy.checkpoint_io, JudgeCheckpointIO):
            strategy.checkpoint_io = JudgeCheckpointIO(strategy.checkpoint_io)


def lightning_cli(args: list[str] | None = None, run: bool = True) -> PhudgeCLI:
    from datamodules import JudgeDataModule
    from phudge_lightning.model.module import JudgeModule

    return PhudgeCLI(
        JudgeModule, JudgeDataModule, args=args, run=run,
        save_config_kwargs={"overwrite": True},
    )
