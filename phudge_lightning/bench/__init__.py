"""``phudge bench``: speed benchmarks, each a small program in the module named for it.

    phudge bench speed --backbone smollm2-135m --data ../shared/data/benchmarks/vicuna_eval.json --n 16
    phudge bench train --backbone smollm2-135m --n 32
    phudge bench serve --help
"""

from __future__ import annotations

import importlib
import json
import os
import sys

# name -> (module with ``main(argv)``, one line of help)
PROGRAMS = {
    "speed": ("phudge_lightning.bench.speed", "judgments/s: the head judge, generative judging and the matmul limit"),
    "train": ("phudge_lightning.bench.train", "training tokens/s: a phudge fit step against plain peft + transformers"),
    "serve": ("phudge_lightning.bench.serve", "the HTTP server under load: latency and throughput"),
}


def run_and_print(run, format_table, args) -> int:
    """Run a benchmark, print its rich table, then (``--json``) one JSON line: the shared ``main``."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    result = run(args)
    from rich.console import Console

    Console().print(format_table(result))
    if args.json:
        print(json.dumps(result), flush=True)
    return 0


def usage() -> str:
    lines = ["usage: phudge bench <benchmark> [options]   (phudge bench <benchmark> --help)", ""]
    return "\n".join(lines + [f"  {name:<8}{text}" for name, (_, text) in PROGRAMS.items()])


def main(argv: list[str] | None = None) -> int | None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if argv[0] not in PROGRAMS:
        print(f"phudge bench: unknown benchmark {argv[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    return importlib.import_module(PROGRAMS[argv[0]][0]).main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
