"""Length-grouped batches and dynamic padding.

Rows of similar length share a batch, so padding stays small without padding everything to
one fixed length. The sampler shards batches over ranks itself (Lightning is told not to swap
in a DistributedSampler) and draws a new order each epoch through ``set_epoch``, which
Lightning calls; every index it yields carries the epoch, so a dataset's augmentation is drawn
afresh per epoch even inside worker processes. After a mid-epoch resume, ``resume(epoch, batches)``
makes the next pass over that epoch skip the batches already trained on, so a resumed run sees
exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import Sampler


class LengthGroupedBatchSampler(Sampler):
    """Batches of indices ``(index, epoch)`` grouped by length.

    Training (``shuffle=True``): shuffle, cut into mega-batches of ``mega * batch_size`` rows,
    sort each by length, cut into batches, shuffle the batches. Evaluation: one sort by
    length, longest first (a memory error shows at once, not at the end).
    """

    def __init__(self, lengths, batch_size: int, *, shuffle: bool, seed: int = 0, mega: int = 50,
                 num_replicas: int = 1, rank: int = 0):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.lengths = np.asarray(lengths)
        self.batch_size, self.shuffle, self.seed, self.mega = batch_size, shuffle, seed, mega
        self.num_replicas, self.rank = num_replicas, rank
        self.epoch = 0
        self._resume: tuple[int, int] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def sampler(self) -> "LengthGroupedBatchSampler":
        # Lightning calls ``set_epoch`` on ``loader.sampler`` and ``loader.batch_sampler.sampler``,
        # never on the batch sampler itself: without this, every epoch would be epoch 0.
        return self

    def resume(self, epoch: int, batches: int) -> bool:
        """Skip the first ``batches`` of this rank's batches the next time ``epoch`` is iterated
        (once: later passes are whole); True if there is anything to skip. The order itself is
        unchanged: it depends on (seed, epoch) only."""
        self._resume = (epoch, batches) if 0 < batches < len(self) else None
        return self._resume is not None

    def _batches(self) -> list[np.ndarray]:
        n = len(self.lengths)
        if not self.shuffle:
            order = np.argsort(-self.lengths, kind="stable")
            return [order[i : i + self.batch_size] for i in range(0, n, self.batch_size)]
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(n)
        size = self.mega * self.batch_size
        batches = []
        for start in range(0, n, size):
            chunk = order[start : start + size]
            chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
            batches += [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        return [batches[i] for i in rng.permutation(len(batches))]

    def __iter__(self):
        batches = self._batches()
        # Every rank must take the same number of steps: repeat the first batches to even out.
        per_rank = math.ceil(len(batches) / self.num_replicas)
        # (cyclically: with fewer batches than ranks, a slice of the list would fall short)
        batches += [batches[i % len(batches)] for i in range(per_rank * self.num_replicas - len(batches))]
        mine = batches[self.rank :: self.num_replicas]
        if self._resume is not None and self._resume[0] == self.epoch:
            mine = mine[self._resume[1] :]
        self._resume = None
        for batch in mine:
            yield [(int(i), self.epoch) for i in batch]

    def __len__(self) -> int:
        return math.ceil(math.ceil(len(self.lengths) / self.batch_size) / self.num_replicas)


class Collator:
    """Pad a list of encoded rows to the longest in the batch, on the tokenizer's side."""

    def __init__(self, pad_token_id: int, padding_side: str):
        self.pad, self.left = pad_token_id, padding_side == "left"

    def _pad(self, rows: list[list[int]], value: int) -> torch.Tensor:
        width = max(len(r) for r in rows)
        out = torch.full((len(rows), width), value, dtype=torch.long)
        for i, r in enumerate(rows):
            if self.left:
                out[i, width - len(r) :] = torch.tensor(r, dtype=torch.long)
            else:
                out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        return out

    def __call__(self, items: list[dict]) -> dict:
        if any(it.get("pair") for it in items):
            return self._mixed(items)
        ids = [it["input_ids"] for it in items]
        batch = {
            "input_ids": self._pad(ids, self.pad),
            "attention_mask": self._pad([[1] * len(r) for r in ids], 0),
            "index": torch.tensor([it["index"] for it in items], dtype=torch.long),
        }
        scores = [it.get("score") for it in items]
        if all(s is not None for s in scores):  # (rows to predict may carry a score or not)
            batch["score"] = torch.tensor(scores, dtype=torch.float32)
        if items[0].get("labels") is not None:
            batch["labels"] = self._pad([it["labels"] for it in items], -100)
        return batch

    def _mixed(self, items: list[dict]) -> dict:
        """Absolute rows and pairs in one batch: both responses of a pair are rows of it.

        ``score`` is NaN on the rows of pairs; ``pairs`` (P, 2) holds the rows of each pair's
        a and b, ``preference`` (P,) the probability that a is better; ``chars`` (N,) each
        row's response length in characters (for a length term).
        """
        ids, scores, chars, pairs, preference = [], [], [], [], []
        for it in items:
            if it.get("pair"):
                pairs.append((len(ids), len(ids) + 1))
                preference.append(it["preference"])
                ids += it["input_ids"]
                scores += [math.nan, math.nan]
                chars += it["chars"]
            else:
                ids.append(it["input_ids"])
                scores.append(math.nan if it.get("score") is None else it["score"])
                chars.append(it["chars"])
        return {
            "input_ids": self._pad(ids, self.pad),
            "attention_mask": self._pad([[1] * len(r) for r in ids], 0),
            "index": torch.tensor([it["index"] for it in items], dtype=torch.long),
            "score": torch.tensor(scores, dtype=torch.float32),
            "chars": torch.tensor(chars, dtype=torch.float32),
            "pairs": torch.tensor(pairs, dtype=torch.long).reshape(-1, 2),
            "preference": torch.tensor(preference, dtype=torch.float32),
        }
