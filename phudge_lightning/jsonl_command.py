"""The command line of a resumable JSON-lines command (``phudge grade``, ``phudge rank``): its
flags, its files, loading the judge, and a progress bar over ``jsonl_resume.process_file``."""

from __future__ import annotations

import sys
from pathlib import Path

from phudge_lightning.judge_options import add_judge_arguments, judge_options, rubric_option
from phudge_lightning.jsonl_resume import REJECTS_SUFFIX, count_lines


def run_with_progress(verb: str, input_path: Path, output_path: Path, rejects_path: Path, work) -> int:
    """Run ``work(advance, report)`` under a progress bar over the input's lines, then print the summary."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    columns = (TextColumn(verb), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(verb, total=count_lines(input_path))
        # soft_wrap: a line is never broken, so a field's name is never cut in two.
        summary = work(lambda n: progress.advance(task, n),
                       lambda message: progress.console.print(f"rejected {message}", markup=False, highlight=False,
                                                              soft_wrap=True))
    rejects = f" (rejects: {rejects_path})" if rejects_path.exists() and rejects_path.stat().st_size else ""
    console.print(f"{'graded' if verb == 'grading' else 'ranked'} {summary.graded}, rejected {summary.rejected}, "
                  f"done before {summary.already_done}: {output_path}{rejects}", markup=False, highlight=False,
                  soft_wrap=True)
    return 0


def prepare_files(prog: str, args) -> tuple[Path, Path, Path] | None:
    """The input, output and rejects paths of ``args``; None (after saying why) when there is no input."""
    input_path, output_path = Path(args.input), Path(args.output)
    rejects_path = Path(args.rejects or str(output_path) + REJECTS_SUFFIX)
    if not input_path.exists():
        print(f"{prog}: no input file at {input_path}", file=sys.stderr)
        return None
    if args.overwrite:
        output_path.unlink(missing_ok=True)
        rejects_path.unlink(missing_ok=True)
    return input_path, output_path, rejects_path


def file_arguments(parser, what: str) -> None:
    """``--checkpoint``, ``--input``, ``--output``, ``--rejects``, ``--batch-size``, the judge's
    flags and ``--overwrite``: the command line of a resumable file command."""
    parser.add_argument("--checkpoint", default="default",
                        help="a .ckpt or a DeepSpeed checkpoint folder from phudge fit, a folder from phudge export, "
                        "or 'default' (the shipped judge; the default)")
    parser.add_argument("--input", required=True, help=f"a JSON-lines file of {what}")
    parser.add_argument("--output", required=True, help="the output JSON-lines file (continued if it exists)")
    parser.add_argument("--rejects", help=f"where bad lines go (default: OUTPUT{REJECTS_SUFFIX})")
    parser.add_argument("--batch-size", type=int, default=8)
    add_judge_arguments(parser)
    parser.add_argument("--overwrite", action="store_true", help="start afresh instead of continuing")
    parser.add_argument("--rubric", type=rubric_option, default=None, metavar="NAME_OR_TEXT",
                        help="for the rows without a rubric: a named rubric (phudge rubrics lists them) or free text")


def run_file_command(prog: str, label: str, args, process) -> int:
    """The shared ``main`` of the file commands (grade, rank): check the files, load the judge
    (one line and exit 2 for a bad checkpoint), then ``process(judge, *paths, batch_size=...,
    rubric=..., advance=..., report=...)`` under a progress bar."""
    paths = prepare_files(prog, args)
    if paths is None:
        return 2
    from phudge_lightning.hub_reach import missing_judge

    # Before the model code's imports (seconds): a hub id with no hub to ask is refused at once.
    paths_given = args.checkpoint if isinstance(args.checkpoint, list) else [args.checkpoint]
    missing = next(filter(None, map(missing_judge, paths_given)), None)
    if missing:
        print(f"{prog}: {missing}", file=sys.stderr)
        return 2
    from phudge_lightning.formats import CheckpointError
    from phudge_lightning.judge import Judge

    try:
        judge = Judge.load(args.checkpoint, batch_size=args.batch_size, **judge_options(args))
    except (CheckpointError, ValueError) as e:  # (ValueError: --lora-scale on a judge without LoRA)
        print(f"{prog}: {e}", file=sys.stderr)
        return 2
    return run_with_progress(label, *paths, lambda advance, report: process(
        judge, *paths, batch_size=args.batch_size, rubric=args.rubric, advance=advance, report=report))
