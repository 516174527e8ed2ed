"""``phudge``: the LightningCLI (fit, validate, test, predict) and the judge's own subcommands.

``fit``/``validate``/``test``/``predict`` are LightningCLI's, configured by YAML
(``phudge fit --config train.yaml``); the others are small argparse programs, each in the
module named for its concern, imported only when called.
"""

from __future__ import annotations

import importlib
import sys

from lightning.pytorch.cli import LightningCLI

# name -> (module with ``main(argv)``, one line of help)
COMMANDS = {
    "data": ("phudge_lightning.data", "check a dataset: rows, valid, invalid, rubric/reference share, p99 tokens"),
    "export": ("phudge_lightning.export", "write a shareable judge folder (ours, or a transformers model + card with --format hf)"),
    "grade": ("phudge_lightning.grade", "grade a JSON-lines file, resumably, in input order"),
    "rank": ("phudge_lightning.rank", "rank many answers to each instruction of a JSON-lines file, resumably"),
    "rubrics": ("phudge_lightning.rubrics", "list the rubrics that can be given by name (--rubric helpfulness)"),
    "evaluate": ("phudge_lightning.evaluate", "measure a judge, an ensemble or the length baseline on benchmarks and a validation split"),
    "serve": ("phudge_lightning.serve", "serve a judge over HTTP with dynamic batching"),
    "bench": ("phudge_lightning.bench", "speed benchmarks: bench speed | bench train | bench serve"),
    "report": ("phudge_lightning.report", "plot validation curves and tabulate the final metrics of runs"),
}
LIGHTNING = {
    "fit": "train a judge (phudge fit --config configs/cpu-smollm2.yaml)",
    "validate": "run one validation epoch",
    "test": "evaluate on data.test_data",
    "predict": "grade data.predict_data over every device (--predict_writer.output_dir: shards + merged file)",
}


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


def usage() -> str:
    lines = ["usage: phudge <command> [options]   (phudge <command> --help for its options)", "", "training (LightningCLI):"]
    lines += [f"  {name:<10}{text}" for name, text in LIGHTNING.items()]
    lines += ["", "judging:"] + [f"  {name:<10}{text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def lightning_cli(args: list[str] | None = None, run: bool = True) -> PhudgeCLI:
    from datamodules import JudgeDataModule
    from phudge_lightning.model.module import JudgeModule

    return PhudgeCLI(
        JudgeModule, JudgeDataModule, args=args, run=run,
        save_config_kwargs={"overwrite": True},
    )


def main(argv: list[str] | None = None) -> int | None:
    from_command_line = argv is None
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if argv[0] in COMMANDS:
        return importlib.import_module(COMMANDS[argv[0]][0]).main(argv[1:])
    if argv[0] not in LIGHTNING:
        print(f"phudge: unknown command {argv[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    from phudge_lightning.formats import CheckpointError

    try:
        # From the shell, LightningCLI reads sys.argv itself (it warns when given both).
        lightning_cli(None if from_command_line else argv)
    except CheckpointError as e:
        print(f"phudge {argv[0]}: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
