"""The flags of every command that loads a judge (``phudge grade``, ``evaluate``, ``serve``).

Kept apart from ``judge.py`` so that parsing a command line imports no torch.
"""

from __future__ import annotations

DTYPES = ("float32", "bfloat16", "float16")


def add_judge_arguments(parser) -> None:
    """The flags of every command that loads a judge (grade, evaluate, serve): ``--max-length``,
    ``--device``, ``--dtype`` and ``--lora-scale``; ``judge_options(args)`` turns them into
    ``Judge`` arguments."""
    parser.add_argument("--max-length", type=int, default=None, help="token budget of a prompt (default: the training one)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when there is one)")
    parser.add_argument("--dtype", default=None, choices=DTYPES,
                        help="the backbone's dtype (bfloat16: several times float32 on AMX CPUs; default: as trained)")
    parser.add_argument("--lora-scale", type=float, default=1.0, metavar="LAMBDA",
                        help="grade with each LoRA update times LAMBDA (WiSE-FT: 0 = the pretrained backbone under "
                             "the trained head, 1 = as trained)")


def judge_options(args) -> dict:
    return {"max_length": args.max_length, "device": args.device, "dtype": args.dtype, "lora_scale": args.lora_scale}


def rubric_option(value: str):
    """An argparse type for ``--rubric``: a known name or free text, returned as given (the
    commands resolve it with ``datamodules.rubrics.resolve_rubric``); an unknown name is an
    error listing the known ones."""
    import argparse

    from datamodules.rubrics import UnknownRubric, resolve_rubric

    try:
        resolve_rubric(value)
        return value
    except UnknownRubric as e:
        raise argparse.ArgumentTypeError(str(e)) from None
