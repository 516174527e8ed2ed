"""``phudge predict``'s writer: per-rank shards, merged into one file in input order.

    phudge predict --config cfg.yaml --ckpt_path last.ckpt --data.predict_data in.jsonl \\
        --predict_writer.output_dir predictions/

Every rank appends its batches to ``shard-<rank>-of-<world>.jsonl`` as they come (complete
lines, flushed), so a run over many devices and nodes holds little in memory and a crash keeps
what was done. At the end, rank 0 merges the shards into ``predictions.jsonl``, one line per
row of ``data.predict_data`` in input order: ``index`` (the row's position among the valid
rows), then the grade's fields as ``phudge grade`` and ``POST /grade`` write them
(``phudge_lightning.grades``): ``score`` (null where the causal head wrote no ``[RESULT]``),
``probabilities`` and ``confidence`` for the classification head, ``feedback`` for the causal
head; with ``include_inputs``, the row's own fields come first (one named like a grade field
is replaced). The length-grouped sampler repeats a few batches so that every rank takes
the same number of steps; the merge keeps the first copy of each row. Over several nodes,
``output_dir`` must be on a filesystem they all share, for rank 0 to read every shard.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import BasePredictionWriter

from phudge_lightning.grades import graded, grades_from_outputs
from phudge_lightning.io import atomic_path

MERGED = "predictions.jsonl"


def shard_name(rank: int, world_size: int) -> str:
    return f"shard-{rank:05d}-of-{world_size:05d}.jsonl"


def prediction_rows(prediction: dict) -> list[dict]:
    """``predict_step``'s batch output as one row per record: ``index``, then the grade's fields
    as every writer gives them (``phudge_lightning.grades``)."""
    return [{"index": index, **grade.to_dict()}
            for index, grade in zip(prediction["index"].tolist(), grades_from_outputs(prediction))]


def merge_shards(shards: list[Path], output: Path, expected: int | None = None, inputs: list[dict] | None = None) -> int:
    """Merge shard files into ``output`` in index order (first copy of each index wins), with
    each row's ``inputs`` in front; raise when an index in 0..expected-1 is missing."""
    rows: dict[int, dict] = {}
    for shard in shards:
        with shard.open("rb") as f:
            for line in f:
                if line.endswith(b"\n"):  # a line a crash cut short is not a prediction
                    row = json.loads(line)
                    rows.setdefault(row["index"], row)
    expected = len(rows) if expected is None else expected
    missing = [i for i in range(expected) if i not in rows]
    if missing:
        raise RuntimeError(f"the shards lack {len(missing)} of {expected} rows, e.g. {missing[:5]}")
    with atomic_path(output) as tmp, tmp.open("w", encoding="utf-8") as f:
        for i in range(expected):
            row = graded(inputs[i], rows[i]) if inputs is not None else rows[i]
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return expected


def input_rows(datamodule) -> list[dict] | None:
    """The predict rows as the datamodule read them (fields that are set, and ``extra`` such as
    ``id``), read again with its settings; None when it is not a grading datamodule."""
    h = getattr(datamodule, "hparams", None)
    if h is None or not getattr(h, "predict_data", None):
        return None
    from datamodules.sources import load_records

    records, _ = load_records(h.predict_data, format=h.format, skip_invalid=h.skip_invalid, require_score=False,
                              limit=h.limit)
    rows = []
    for r in records:
        fields = {k: v for k, v in r.to_dict().items() if k != "extra" and v is not None}
        rows.append({**r.extra, **fields})
    return rows


class JudgePredictionWriter(BasePredictionWriter):
    def __init__(self, output_dir: str | None = None, merge: bool = True, include_inputs: bool = True):
        """
        Args:
            output_dir: where the shards and ``predictions.jsonl`` go; None writes nothing
                (so the callback can stay configured for ``fit``).
            merge: merge the shards into ``predictions.jsonl`` at the end (on rank 0).
            include_inputs: put each row's fields (``instruction``, ``id`` ...) in the merged file.
        """
        super().__init__(write_interval="batch")
        self.output_dir = Path(output_dir) if output_dir else None
        self.merge, self.include_inputs = merge, include_inputs
        self._shard = None

    @property
    def merged_path(self) -> Path | None:
        return self.output_dir / MERGED if self.output_dir else None

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage != "predict" or self.output_dir is None:
            return
        super().setup(trainer, pl_module, stage)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        path = self.output_dir / shard_name(trainer.global_rank, trainer.world_size)
        self._shard = path.open("wb")  # a fresh run: truncate this rank's shard

    def write_on_batch_end(self, trainer, pl_module, prediction: Any, batch_indices, batch, batch_idx: int,
                           dataloader_idx: int = 0) -> None:
        if self._shard is None:
            return
        lines = "".join(json.dumps(row) + "\n" for row in prediction_rows(prediction))
        self._shard.write(lines.encode("utf-8"))
        self._shard.flush()

    def on_predict_epoch_end(self, trainer, pl_module) -> None:
        if self._shard is None:
            return
        os.fsync(self._shard.fileno())
        self._shard.close()
        self._shard = None
        trainer.strategy.barrier("phudge-predict-shards")  # every rank's shard is complete
        if self.merge and trainer.is_global_zero:
            datamodule = getattr(trainer, "datamodule", None)
            sets = getattr(datamodule, "sets", {})
            expected = len(sets["predict"]) if "predict" in sets else None
            inputs = input_rows(datamodule) if self.include_inputs else None
            if inputs is not None and expected is not None and len(inputs) != expected:
                inputs = None  # read differently: better no inputs than wrong ones
            shards = [self.output_dir / shard_name(r, trainer.world_size) for r in range(trainer.world_size)]
            merge_shards(shards, self.merged_path, expected, inputs)
        trainer.strategy.barrier("phudge-predict-merged")

    def teardown(self, trainer, pl_module, stage: str) -> None:
        if self._shard is not None:  # interrupted: keep what was written
            self._shard.close()
            self._shard = None
