"""Several sources in one run: absolute rows and pairs, each source with its own weight.

A source is a dict (a YAML mapping under ``data.sources``):

- ``data`` (required): a file, ``demo`` or a hub name, read through the format registry;
- ``format``: a registered format, or ``auto`` (the default);
- ``split``: a hub dataset's split (``train`` when not given; a local file has one);
- ``weight``: how many times the source's training items are drawn per epoch (0.5: half of them,
  2: each twice); the default 1;
- ``limit``: keep at most this many training items (drawn at random, after balancing);
- ``val_fraction``: the share of the source's *instructions* held out (default ``data.val_fraction``);
  every item of a held-out instruction goes to validation, so no prompt is on both sides;
- ``val_limit``: keep at most this many validation items (drawn at random);
- ``balance_length``: for pairs, keep as many pairs where the preferred response is the shorter
  one as where it is the longer one (the larger group is subsampled; ties are kept);
- ``val_balance_length``: the same for the validation pairs (before ``val_limit``), so that a
  checkpoint chosen on ``val/pair_accuracy`` is not chosen for following length: on AlpacaEval's
  held-out pairs the longer answer wins 85% of the time;
- ``where``: keep only the items whose fields equal these values, e.g. ``{annotator: ...}``
  (the fields a format keeps in ``extra``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields

import numpy as np

from datamodules.records import Pair, Record


@dataclass
class Source:
    data: str
    format: str = "auto"
    split: str | None = None
    weight: float = 1.0
    limit: int | None = None
    val_fraction: float | None = None
    val_limit: int | None = None
    balance_length: bool = False
    val_balance_length: bool = False
    where: dict = field(default_factory=dict)

    @classmethod
    def from_config(cls, spec: dict | str) -> "Source":
        if isinstance(spec, str):
            return cls(data=spec)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(spec) - known)
        if unknown or "data" not in spec:
            problem = f"unknown keys {unknown}" if unknown else "no 'data' key"
            raise ValueError(f"data.sources entry {spec!r}: {problem}; keys: {sorted(known)}")
        source = cls(**spec)
        if source.weight < 0:
            raise ValueError(f"data.sources entry for {source.data}: weight must be >= 0, got {source.weight}")
        return source


def instruction_of(item: Record | Pair) -> str:
    return (item.a if isinstance(item, Pair) else item).instruction


def extra_of(item: Record | Pair) -> dict:
    return (item.a if isinstance(item, Pair) else item).extra


def held_out(instruction: str, fraction: float, seed: int) -> bool:
    """Whether ``instruction`` is in the validation share: a hash of (seed, normalised text)."""
    key = f"{seed}\x00{' '.join(instruction.lower().split())}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") / 2**64 < fraction


def split_by_instruction(items: list, fraction: float, seed: int) -> tuple[list, list]:
    """(train, val): every item of a held-out instruction is in val, never split across both."""
    train, val = [], []
    for item in items:
        (val if held_out(instruction_of(item), fraction, seed) else train).append(item)
    return train, val


def preferred_is_longer(pair: Pair) -> bool | None:
    """True / False when the preferred response is the longer / shorter one; None for ties and equal lengths."""
    if pair.preference == 0.5 or len(pair.a.response) == len(pair.b.response):
        return None
    return (pair.preference > 0.5) == (len(pair.a.response) > len(pair.b.response))


def balance_by_length(items: list, seed: int) -> list:
    """Subsample the pairs so that the preferred response is longer as often as shorter."""
    groups = {True: [], False: []}
    kept = []
    for i, item in enumerate(items):
        side = preferred_is_longer(item) if isinstance(item, Pair) else None
        (kept if side is None else groups[side]).append(i)
    n = min(len(groups[True]), len(groups[False]))
    rng = np.random.default_rng([seed, 7])
    for side in (True, False):
        kept += sorted(rng.choice(groups[side], size=n, replace=False).tolist()) if n else []
    return [items[i] for i in sorted(kept)]


def sample(items: list, n: int | None, seed: int, salt: int) -> list:
    """At most ``n`` items drawn without replacement, in their original order."""
    if n is None or n >= len(items):
        return items
    keep = np.random.default_rng([seed, salt]).choice(len(items), size=n, replace=False)
    return [items[i] for i in sorted(keep)]


def weighted(items: list, weight: float, seed: int) -> list:
    """The items drawn ``weight`` times: whole copies, then a random part for the fraction."""
    whole, part = int(weight), weight - int(weight)
    return items * whole + sample(items, int(round(part * len(items))), seed, 11)


def filtered(items: list, where: dict) -> list:
    return [it for it in items if all(extra_of(it).get(k) == v for k, v in where.items())] if where else items
