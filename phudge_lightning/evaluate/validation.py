"""``phudge evaluate --validation CONFIG [OVERLAY...]``: the validation split of a training config,
built as ``phudge fit`` builds it, graded as benchmarks: the figure a checkpoint is chosen on
(pair accuracy, ties left out, as ``val/pair_accuracy``), for any judge or ensemble.

The split gives up to two benchmarks, ``validation_pairs`` (its preference pairs) and
``validation_ratings`` (its scored records); when several sources hold pairs, each source's
pairs are one more, ``validation_pairs/<file stem>``, whose scores are a slice of the
validation pairs' (the sources' validation items follow one another in the split, in the
config's order), not graded twice.
"""

from __future__ import annotations

from pathlib import Path

from phudge_lightning.benchmarks import ABSOLUTE, RELATIVE, Benchmark

PAIRS, RATINGS = "validation_pairs", "validation_ratings"


def read_configs(configs: list[str]) -> tuple[dict, dict]:
    """The ``data`` and ``model`` sections of a config and its overlays, each key of a later one
    replacing the earlier's."""
    import yaml

    data, model = {}, {}
    for config in configs:
        try:
            cfg = yaml.safe_load(Path(config).read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ValueError(f"--validation {config}: not a readable YAML file ({type(e).__name__})") from None
        data.update(cfg.get("data") or {})
        model.update(cfg.get("model") or {})
    if not model.get("backbone"):
        raise ValueError(f"--validation {' '.join(configs)}: no model.backbone (its tokenizer builds the prompts)")
    return data, model


def validation_sets(configs: list[str]) -> tuple[dict[str, Benchmark], dict[str, slice]]:
    """(benchmarks by name, and for each source's pairs where their records lie among the
    validation pairs' records)."""
    from datamodules import JudgeDataModule, mixing
    from datamodules.records import Pair

    data, model = read_configs(configs)
    module = JudgeDataModule(**{**data, "backbone": model["backbone"]})
    module.setup("validate")
    items, source = module.sets["val"].items, " ".join(configs)
    sets = {PAIRS: Benchmark(PAIRS, RELATIVE, source, "the held-out preference", [it for it in items if isinstance(it, Pair)]),
            RATINGS: Benchmark(RATINGS, ABSOLUTE, source, "the held-out score",
                               [it for it in items if not isinstance(it, Pair)])}
    sets = {name: bench for name, bench in sets.items() if bench.items}  # a split may hold no pairs or no ratings
    sources = [mixing.Source.from_config(spec).data for spec in data.get("sources") or []]
    counts = [module.stats.get(f"val_items/{name}", 0) for name in sources]
    per_source = {}  # name: (its pairs, where their records lie among the validation pairs' records)
    if len(set(sources)) == len(sources) and sum(counts) == len(items):  # else the slices are not known
        start, first = 0, 0
        for name, count in zip(sources, counts):
            pairs = [it for it in items[start:start + count] if isinstance(it, Pair)]
            start += count
            if pairs:
                per_source[f"{PAIRS}/{Path(name).name.split('.')[0]}"] = (pairs, slice(2 * first, 2 * (first + len(pairs))))
                first += len(pairs)
    if len(per_source) < 2:  # one source's pairs are the validation pairs themselves
        return sets, {}
    sets.update({name: Benchmark(name, RELATIVE, source, "the held-out preference", pairs)
                 for name, (pairs, _) in per_source.items()})
    return sets, {name: part for name, (_, part) in per_source.items()}
