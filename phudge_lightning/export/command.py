"""``phudge export``: write a judge as a folder to share, in this project's format or as a
standard transformers model, with its model card; optionally push it to the hub.

    phudge export --checkpoint best.ckpt --output judge/                  # judge.json + adapter (this project)
    phudge export --checkpoint best.ckpt --output judge-hf/ --format hf   # AutoModelForSequenceClassification
    phudge export --checkpoint best.ckpt --output judge-peft/ --format peft  # a PEFT adapter on the base model (a few MB)
    phudge export --checkpoint best.ckpt --output judge-hf/ --format hf --results vicuna.json --push-to-hub me/judge
    phudge export --checkpoint seed1.ckpt seed2.ckpt seed3.ckpt --output judges/   # an ensemble (mean score)
    phudge export --checkpoint best.ckpt --output judge-wise/ --lora-scale 0.5     # WiSE-FT: halfway to the pretrained backbone

Exit status 2, with the reason on one line, when ``--format hf`` or ``peft`` would change the judge's scores.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

FORMATS = ("judge", "hf", "peft")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="phudge export", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, nargs="+",
                        help="a .ckpt or DeepSpeed folder written by phudge fit, or a folder from phudge export; "
                             "several: one ensemble folder that grades each response by the mean of their scores")
    parser.add_argument("--output", required=True, help="the folder to write")
    parser.add_argument("--format", default="judge", choices=FORMATS,
                        help="judge: this project's folder (judge.json, adapter); hf: a standard transformers model + card; "
                             "peft: a LoRA adapter (and the head) for the base model's sequence classifier + card")
    parser.add_argument("--lora-scale", type=float, default=1.0, metavar="LAMBDA",
                        help="write each LoRA update times LAMBDA (WiSE-FT: 0 = the pretrained backbone under the "
                             "trained head, 1 = as trained; see phudge_lightning.model.backbone.scale_lora)")
    parser.add_argument("--results", nargs="+", default=[], metavar="FILE",
                        help="phudge evaluate --output files whose figures go into the model card (--format hf)")
    parser.add_argument("--license", default=None, help="the card's licence (default: the base model's, when known)")
    parser.add_argument("--push-to-hub", default=None, metavar="REPO_ID", help="upload the folder to this hub repository")
    parser.add_argument("--dry-run", action="store_true", help="with --push-to-hub: list what would be sent, send nothing")
    parser.add_argument("--private", action="store_true", help="with --push-to-hub: create the repository private")
    parser.add_argument("--token", default=None, help="hub token (default: $HF_TOKEN or the stored login)")
    args = parser.parse_args(argv)
    if args.format != "judge" and len(args.checkpoint) > 1:
        parser.error(f"--format {args.format} writes one model: an ensemble is exported with --format judge")
    if args.format != "hf" and (args.results or args.license):
        parser.error("--results and --license go with --format hf")
    if args.format == "judge" and args.push_to_hub:
        parser.error("--push-to-hub goes with --format hf or peft")
    return args


def load_judge(checkpoint: str, lora_scale: float = 1.0):
    """The judge at ``checkpoint`` (``phudge_lightning.formats.load``), each LoRA update times
    ``lora_scale``; ``CheckpointError`` for a path that is no judge, ``ValueError`` for a scale
    with no adapter."""
    from phudge_lightning.formats import CheckpointError, load
    from phudge_lightning.model.inference import members, prepare

    judge = load(checkpoint)
    if not all(hasattr(one, "trained_state_dict") for one in members(judge)):
        raise CheckpointError(f"{' '.join(map(str, checkpoint)) if isinstance(checkpoint, list) else checkpoint} is "
                              "already a transformers model: phudge export writes judges trained with phudge fit")
    return prepare(judge, lora_scale=lora_scale, merge=False)


class Refused(Exception):
    """A judge ``phudge export`` will not write: its message is the one line the user sees."""


def save_one(checkpoint: str, output, format: str, lora_scale: float, one: str, as_what: str):
    """(judge, folder) of ``checkpoint`` written in ``format`` (hf, peft), a format that holds a
    single judge. ``Refused`` for a checkpoint that cannot be read, an ensemble, or a judge the
    format cannot hold."""
    from phudge_lightning.formats import CheckpointError, save
    from phudge_lightning.formats.hf import NotExportable

    try:
        module = load_judge(checkpoint, lora_scale)
    except (CheckpointError, ValueError) as e:
        raise Refused(str(e)) from None
    if hasattr(module, "members"):
        raise Refused(f"{checkpoint} is an ensemble: --format {format} writes {one}")
    try:
        return module, save(module, output, format)
    except NotExportable as e:
        raise Refused(f"{checkpoint} cannot be exported as {as_what}: {e}") from None


def export_hf_folder(args) -> int:
    import json

    from phudge_lightning.export import card
    from phudge_lightning.formats import kind_of
    from phudge_lightning.formats.hf import SETTINGS

    try:  # the cheap check first: a judge that cannot be exported stops before any file is read
        results = card.read_results(args.results)
    except ValueError as e:
        print(f"phudge export: {e}", file=sys.stderr)
        return 2
    (args.checkpoint,) = args.checkpoint
    try:
        module, folder = save_one(args.checkpoint, args.output, "hf", args.lora_scale, "one transformers model",
                                  "a transformers model")
    except Refused as e:
        print(f"phudge export: {e}", file=sys.stderr)
        return 2
    settings = json.loads((folder / SETTINGS).read_text())
    repo = args.push_to_hub or folder.resolve().name
    # The run's figures for the card live beside a training checkpoint, not beside an export; and
    # they are not the figures of a judge whose LoRA was scaled.
    checkpoint = None if kind_of(args.checkpoint).name == "judge" or getattr(module, 'lora_scale', 1.0) != 1.0 else args.checkpoint
    (folder / "README.md").write_text(card.model_card(settings, repo=repo, license=args.license,
                                                      checkpoint=checkpoint, results=results))
    print(f"exported to {folder} ({settings['head']} head as a transformers model, with README.md)")
    return push(args, folder) if args.push_to_hub else 0


def export_peft_folder(args) -> int:
    from phudge_lightning.formats import peft

    (checkpoint,) = args.checkpoint
    try:
        _, folder = save_one(checkpoint, args.output, "peft", args.lora_scale, "one adapter", "a peft adapter")
    except Refused as e:
        print(f"phudge export: {e}", file=sys.stderr)
        return 2
    print(f"exported to {folder} (LoRA and the head as a peft adapter of {peft.base_of(folder)}, with README.md)")
    return push(args, folder) if args.push_to_hub else 0


def push(args, folder: Path) -> int:
    from phudge_lightning.export import hub

    try:
        files = hub.push(folder, args.push_to_hub, token=args.token, private=args.private, dry_run=args.dry_run)
    except hub.PushError as e:
        print(f"phudge export: cannot push to {args.push_to_hub}: {e}", file=sys.stderr)
        return 2
    verb = "would send" if args.dry_run else "sent"
    print(f"{verb} {len(files)} files ({sum(size for _, size in files) / 1e6:.1f} MB) to "
          f"https://huggingface.co/{args.push_to_hub}:")
    for name, size in files:
        print(f"  {name}  {size} bytes")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.format == "hf":
        return export_hf_folder(args)
    if args.format == "peft":
        return export_peft_folder(args)
    from phudge_lightning.formats import CheckpointError, save

    try:  # several paths (or an ensemble folder given again): one ensemble of all their members
        judge = load_judge(args.checkpoint, args.lora_scale)
    except (CheckpointError, ValueError) as e:
        print(f"phudge export: {e}", file=sys.stderr)
        return 2
    if not hasattr(judge, "members"):
        print(f"exported to {save(judge, args.output, 'judge')}")
        return 0
    folder = save(judge, args.output, "ensemble")
    print(f"exported an ensemble of {len(judge.members)} judges to {folder}")
    return 0
