"""``phudge data``: check a dataset before paying for training."""

from __future__ import annotations

import argparse
import json
import sys

# format: the format read (detected under auto); rows: the file's rows read; valid: the items they
# gave (a scored record, or a pair: one row of most pair formats, several for some, and pairs formed
# across rows for a format that pairs answers to one question), of which ``pairs`` are pairs, ``ties``
# ties; longer_preferred: the share of decided pairs whose preferred response is the longer (what the
# length heuristic gets right); unlabelled: rows a format drops for having no label (PandaLM's
# three-way disagreements); with_rubric, with_reference and p99_tokens are over responses (a pair is two).
KEYS = ("format", "rows", "valid", "invalid", "unlabelled", "pairs", "ties", "longer_preferred", "with_rubric",
        "with_reference", "p99_tokens")


def summarize(data: str, backbone: str | None = "smollm2-135m", format: str = "auto", percentile: float = 99.0,
              score_range=(1, 5), layout: str = "prometheus") -> tuple[dict, list]:
    from datamodules.judge_datamodule import percentile_length
    from datamodules.records import Pair, score_scale
    from datamodules.sources import load_items, no_valid_rows

    with score_scale(score_range):
        stats = {}
        items, errors, dropped = load_items(data, format=format, skip_invalid=True, stats=stats)
    if not items:  # a source with nothing valid is refused, as load_records refuses it
        error = no_valid_rows(data)
        error.errors = errors  # what was wrong with its rows, for main to show before the refusal
        raise error
    from datamodules.mixing import preferred_is_longer

    records = [r for it in items for r in ((it.a, it.b) if isinstance(it, Pair) else (it,))]
    pairs = [it for it in items if isinstance(it, Pair)]
    longer = [side for side in map(preferred_is_longer, pairs) if side is not None]
    result = {
        "format": stats["format"],
        "rows": stats["rows"],
        "valid": len(items),
        "invalid": len(errors),
        "unlabelled": dropped,
        "pairs": len(pairs),
        "ties": sum(p.preference == 0.5 for p in pairs),
        "longer_preferred": round(sum(longer) / len(longer), 3) if longer else None,
        "with_rubric": sum(r.rubric is not None for r in records),
        "with_reference": sum(r.reference_answer is not None for r in records),
        "p99_tokens": None,
    }
    if backbone:
        from datamodules.tokenizer import load_tokenizer
        from datamodules.prompt import PromptEncoder

        encoder = PromptEncoder(load_tokenizer(backbone), score_range=score_range, layout=layout)
        result["p99_tokens"] = percentile_length([encoder.length(r) for r in records], percentile)
    return result, errors


def show_invalid(errors: list, most: int = 10) -> None:
    for error in errors[:most]:
        print(f"invalid: {error}")
    if len(errors) > most:
        print(f"... and {len(errors) - most} more invalid rows")


def main(argv: list[str] | None = None) -> int:
    from datamodules.formats import FORMATS
    from datamodules.prompt import LAYOUTS
    from datamodules.records import RecordError

    parser = argparse.ArgumentParser(prog="phudge data", description=__doc__)
    parser.add_argument("--data", required=True, help="demo, a json/jsonl/parquet file, or a hub dataset name")
    parser.add_argument("--backbone", default="smollm2-135m", help="tokenizer for p99_tokens ('none' to skip)")
    parser.add_argument("--format", default="auto", choices=["auto", *FORMATS],
                        help="a registered data format (datamodules.formats); auto: the one most of the first 10 rows look like")
    parser.add_argument("--layout", default="prometheus", choices=LAYOUTS, help="the prompt layout p99_tokens measures (data.layout)")
    parser.add_argument("--json", action="store_true", help="end with one JSON object on the last line")
    parser.add_argument("--score-range", type=float, nargs=2, default=(1, 5), metavar=("LOW", "HIGH"),
                        help="the scale the scores are checked against (model.score_range; default 1 5)")
    args = parser.parse_args(argv)
    try:
        result, errors = summarize(args.data, None if args.backbone.lower() == "none" else args.backbone, args.format,
                                   score_range=args.score_range, layout=args.layout)
    except (RecordError, FileNotFoundError) as e:  # no such file, or nothing valid in it: say so, no traceback
        show_invalid(getattr(e, "errors", []))  # why nothing was valid, row by row
        print(f"phudge data: {e}", file=sys.stderr)
        return 2
    show_invalid(errors)
    if args.json:
        print(json.dumps(result))
    else:
        for key in KEYS:
            print(f"{key:>15}: {result[key]}")
    return 0
