"""``phudge``: the LightningCLI (fit, validate, test, predict) and the judge's own subcommands.

``fit``/``validate``/``test``/``predict`` are LightningCLI's, configured by YAML
(``phudge fit --config train.yaml``; ``PhudgeCLI`` in ``lightning_cli.py``); the others are small
argparse programs, each in the module named for its concern. Both are imported only when called.
"""

from __future__ import annotations

import importlib
import sys

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


def usage() -> str:
    lines = ["usage: phudge <command> [options]   (phudge <command> --help for its options)", "", "training (LightningCLI):"]
    lines += [f"  {name:<10}{text}" for name, text in LIGHTNING.items()]
    lines += ["", "judging:"] + [f"  {name:<10}{text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def lightning_cli(args: list[str] | None = None, run: bool = True):
    """``PhudgeCLI`` (``lightning_cli.py``) over ``JudgeModule`` and ``JudgeDataModule``."""
    from phudge_lightning.lightning_cli import lightning_cli as build

    return build(args, run)


def __getattr__(name: str):
    # The LightningCLI subclass lives in lightning_cli.py, imported only for the Lightning
    # commands: importing Lightning takes seconds, which the judge commands need not pay.
    if name in ("PhudgeCLI", "head_uses_lm_head"):
        from phudge_lightning import lightning_cli

        return getattr(lightning_cli, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
