"""The datasets a judge trains and grades on: records as an Arrow table (``to_dataset``), its
encoded rows (``GradingDataset``), and records mixed with pairs (``ItemDataset``), each with
the paper's rubric/reference dropout when training."""

from __future__ import annotations

import dataclasses

import datasets
import numpy as np
from torch.utils.data import Dataset

from datamodules.prompt import PromptEncoder
from datamodules.records import Pair, Record, rubric_text

COLUMNS = ("instruction", "response", "rubric", "reference_answer", "context", "score", "feedback")


def to_dataset(records: list[Record]) -> datasets.Dataset:
    """Records as an Arrow table; the rubric as its Prometheus text (one column type)."""
    rows = [{**{c: getattr(r, c) for c in COLUMNS}, "rubric": rubric_text(r.rubric)} for r in records]
    return datasets.Dataset.from_list(rows, features=datasets.Features({
        "instruction": datasets.Value("string"), "response": datasets.Value("string"),
        "rubric": datasets.Value("string"), "reference_answer": datasets.Value("string"),
        "context": datasets.Value("string"), "score": datasets.Value("float32"), "feedback": datasets.Value("string"),
    }))


class GradingDataset(Dataset):
    """Encoded rows of a grading table, with the rubric/reference dropout when ``augment``."""

    def __init__(self, table: datasets.Dataset, encoder: PromptEncoder, *, rubric_dropout: float = 0.0,
                 reference_dropout: float = 0.0, seed: int = 0):
        self.table, self.encoder = table, encoder
        self.rubric_dropout, self.reference_dropout, self.seed = rubric_dropout, reference_dropout, seed

    def __len__(self) -> int:
        return len(self.table)

    def record(self, index: int, epoch: int = 0) -> Record:
        return self._dropped(Record(**self.table[index]), index, epoch)

    def _dropped(self, record: Record, index: int, epoch: int) -> Record:
        if not (self.rubric_dropout or self.reference_dropout):
            return record
        # Two independent draws from (seed, epoch, row): the same in any worker or rank.
        drop_rubric, drop_reference = np.random.default_rng([self.seed, epoch, index]).random(2)
        return dataclasses.replace(
            record,
            rubric=None if drop_rubric < self.rubric_dropout else record.rubric,
            reference_answer=None if drop_reference < self.reference_dropout else record.reference_answer,
        )

    def __getitem__(self, key) -> dict:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        record = self.record(index, epoch)
        encoded = self.encoder.encode(record)
        return {"input_ids": encoded.input_ids, "labels": encoded.labels, "score": record.score, "index": index}


class ItemDataset(GradingDataset):
    """Absolute records and pairs (a list), encoded; a pair's two responses share one draw of
    the rubric/reference dropout, so both are graded under the same prompt."""

    def __init__(self, items: list, encoder: PromptEncoder, **kwargs):
        self.items = items
        super().__init__(None, encoder, **kwargs)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key) -> dict:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        item = self.items[index]
        if isinstance(item, Pair):
            sides = [self._dropped(r, index, epoch) for r in (item.a, item.b)]
            return {"input_ids": [self.encoder.encode(r).input_ids for r in sides], "pair": True,
                    "preference": item.preference, "chars": [len(r.response) for r in sides], "index": index}
        record = self._dropped(item, index, epoch)
        return {"input_ids": self.encoder.encode(record).input_ids, "labels": None, "score": record.score,
                "chars": len(record.response), "index": index}


def mixing_length(item, encoder: PromptEncoder) -> int:
    """The token length of a record, or of the longer response of a pair."""
    if isinstance(item, Pair):
        return max(encoder.length(item.a), encoder.length(item.b))
    return encoder.length(item)
