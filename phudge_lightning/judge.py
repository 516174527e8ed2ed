"""The Judge API: grade one response, many, compare two, or rank many.

    from phudge_lightning import Judge
    judge = Judge.load("runs/cpu-smollm2/.../last.ckpt")   # or a DeepSpeed folder, or an exported one
    judge.grade("What is 2+2?", "4", reference_answer="2 + 2 = 4").score
    judge.rank("What is 2+2?", ["4", "5", "four"], rubric="factual_correctness").answers[0].index

Relative grading scores each response on its own with the absolute judge, as the paper does:
neither response ever sees the other, so the verdict cannot depend on which is shown first
(no position bias), and the two scores come for free.

Speed (measured by ``phudge bench speed``): a LoRA adapter is merged into the weights it adapts
and peft's wrappers are removed (1.6x, then 1.07x, on CPU); rows share a batch only while its
padding stays within ``max_padding`` of its tokens (on CPU 0: a padded batch needs an attention
mask, which costs SDPA its fast causal path, so there rows of different lengths run one by
one); ``iter_grades`` tokenises the next block in a thread while the current one is graded.
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator

import torch

from datamodules.batching import Collator
from datamodules.prompt import Encoded, PromptEncoder, token_budget
from datamodules.records import DEFAULT_SCORE_RANGE, Record, validate_record
from phudge_lightning.grades import Grade, grades_from_outputs
from phudge_lightning.formats import DEFAULT, load
from phudge_lightning.formats.registry import resolve
from phudge_lightning.metrics import pairwise_probabilities, verdict  # noqa: F401  (re-exported from here too)
from phudge_lightning.model.inference import prepare


@dataclass
class Comparison:
    """``winner`` is "A", "B" or "tie" (|score_a - score_b| <= tie_margin); ``margin`` is
    score_a - score_b. With distributions, ``p_a_better`` = P(X_A > X_B) and ``p_tie`` =
    P(X_A = X_B) for independent X_A ~ p_A and X_B ~ p_B over the judge's integer scores."""

    winner: str
    score_a: float | None
    score_b: float | None
    margin: float | None
    p_a_better: float | None = None
    p_tie: float | None = None

    def to_dict(self) -> dict:
        """``winner``, ``score_a``, ``score_b`` and ``margin`` always (null without a score);
        ``p_a_better`` and ``p_tie`` when both grades have probabilities."""
        return {k: v for k, v in asdict(self).items() if v is not None or k not in ("p_a_better", "p_tie")}


@dataclass
class BatchStats:
    """What the judge's batches held (for benchmarks): ``tokens`` real, ``slots`` padding included."""

    rows: int = 0
    batches: int = 0
    tokens: int = 0
    slots: int = 0

    @property
    def padding_waste(self) -> float:
        """Padded tokens over all tokens in the batches."""
        return 1 - self.tokens / self.slots if self.slots else 0.0


def length_batches(lengths: list[int], batch_size: int, max_padding: float = 0.0) -> list[list[int]]:
    """Indices in batches of at most ``batch_size``, longest first; a row joins a batch only while
    the batch's padding stays within ``max_padding`` of its slots (0: rows of one length only).

    >>> length_batches([5, 9, 8, 9], batch_size=2, max_padding=0.1)
    [[1, 3], [2], [0]]
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for i in order:
        batch = batches[-1] if batches else None
        if batch and len(batch) < batch_size:
            real = sum(lengths[j] for j in batch) + lengths[i]
            if 1 - real / (lengths[batch[0]] * (len(batch) + 1)) <= max_padding:
                batch.append(i)
                continue
        batches.append([i])
    return batches


def default_judge_path() -> Path:
    """The exported judge shipped in the package (``phudge_lightning/judges/default``, trained by
    ``configs/judge.yaml``): what ``Judge.load()`` reads when no checkpoint is given."""
    return resolve(DEFAULT)


class Judge:
    def __init__(self, module, *, max_length: int | None = None, device: str | None = None, batch_size: int = 8,
                 dtype: str | None = None, lora_scale: float = 1.0):
        """Wrap a judge (a ``JudgeModule``, a ``TransformersJudge`` or an ensemble: see
        ``model/scoring.py``), made ready for inference only by ``model.inference.prepare``: its
        LoRA updates times ``lora_scale`` (WiSE-FT: 1 the judge as trained, 0 the pretrained
        backbone under the trained head), then merged into the weights; the backbone in ``dtype``
        (``bfloat16``: 2.6-3.4x float32 on CPUs with AMX, see ``phudge bench speed``) instead of
        the trained one. ``max_length`` defaults to the one used in training."""
        self.module = prepare(module, lora_scale=lora_scale, dtype=dtype)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.module.to(self.device)
        settings = getattr(module, "prompt_settings", {}) or {}
        # The checkpoint's scale ([1, 5] for those made before scales were a setting).
        self.score_range = tuple(getattr(module, "score_range", None) or DEFAULT_SCORE_RANGE)
        self.tokenizer = module.tokenizer
        # Without a training budget, the backbone's own limit: a long text is cut, never run whole.
        max_length = token_budget(self.tokenizer, max_length or settings.get("max_length"))
        self.encoder = PromptEncoder(self.tokenizer, max_length=max_length,
                                     use_chat_template=settings.get("use_chat_template", True), score_range=self.score_range,
                                     layout=settings.get("layout", "prometheus"),
                                     reads_rubric=settings.get("reads_rubric", True),
                                     reads_reference=settings.get("reads_reference", True))
        self.collate = Collator(self.tokenizer.pad_token_id, self.tokenizer.padding_side)
        self.batch_size = batch_size
        # On CPU a padded batch is slower than its rows one by one (see the module docstring).
        self.max_padding = 0.0 if self.device.type == "cpu" else 0.05
        self.stats = BatchStats()

    @classmethod
    def load(cls, path: str | Path | list = DEFAULT, **kwargs) -> "Judge":
        """A judge from anything ``phudge_lightning.formats`` reads: a ``.ckpt`` file or a
        DeepSpeed folder written by ``phudge fit``, a folder from ``phudge export`` (either format,
        or an ensemble of several judges), the hub id of one exported with ``--format hf``, or
        ``"default"``: the judge shipped in this package (``default_judge_path()``); a list of
        them grades as one ensemble (``model/ensemble.py``). ``CheckpointError``, one line, for
        anything else."""
        return cls(load(path), **kwargs)

    # -- absolute grading ------------------------------------------------------------------------
    def grade(self, instruction: str, response: str, rubric: str | dict | None = None,
              reference_answer: str | None = None, context: str | list[str] | None = None) -> Grade:
        raw = {"instruction": instruction, "response": response, "rubric": rubric,
               "reference_answer": reference_answer, "context": context}
        return self.grade_many([raw])[0]

    def grade_many(self, records: Iterable[dict | Record], batch_size: int | None = None) -> list[Grade]:
        """Grades in input order; rows are batched by length so padding stays small."""
        return list(self.iter_grades(records, batch_size))

    def iter_grades(self, records: Iterable[dict | Record], batch_size: int | None = None, block: int = 32) -> Iterator[Grade]:
        """Like ``grade_many``, but yields as it goes, in input order: rows are read in blocks of
        ``block`` batches, each block sorted by length, so a long stream needs little memory."""
        size = batch_size or self.batch_size
        with ThreadPoolExecutor(max_workers=1) as tokeniser:
            ahead = None  # the previous block's encoding, made while the one before was graded
            for rows in self._blocks(records, block * size):
                encoding = tokeniser.submit(self._encode, rows)
                if ahead is not None:
                    yield from self._grade_block(ahead.result(), size)
                ahead = encoding
            if ahead is not None:
                yield from self._grade_block(ahead.result(), size)

    def _blocks(self, records: Iterable[dict | Record], size: int) -> Iterator[list[Record]]:
        pending: list[Record] = []
        for i, r in enumerate(records, 1):
            pending.append(r if isinstance(r, Record) else validate_record(r, source="grade_many", row=i, require_score=False,
                                                                           score_range=self.score_range))
            if len(pending) == size:
                yield pending
                pending = []
        if pending:
            yield pending

    def grade_records(self, records: list[Record], batch_size: int | None = None) -> list[Grade]:
        return self._grade_block(self._encode(records), batch_size or self.batch_size)

    def _encode(self, records: list[Record]) -> list[Encoded]:
        encoded = [self.encoder.encode(r) for r in records]
        shortened = sum(e.truncated for e in encoded)
        if shortened:
            warnings.warn(f"{shortened} of {len(records)} prompts were over {self.encoder.max_length} tokens: the "
                          "middle of their longest fields was cut, marked [...]; their grades say truncated=True")
        return encoded

    def _grade_block(self, encoded: list[Encoded], batch_size: int) -> list[Grade]:
        """Grades in the order of ``encoded``, run in length-grouped batches."""
        results: list[Grade | None] = [None] * len(encoded)
        for chunk in length_batches([len(e.input_ids) for e in encoded], batch_size, self.max_padding):
            for i, grade in zip(chunk, self._grade_encoded([encoded[i] for i in chunk])):
                results[i] = grade
        return results

    def _grade_encoded(self, encoded: list[Encoded]) -> list[Grade]:
        batch = self.collate([{"input_ids": e.input_ids, "index": 0} for e in encoded])
        self.stats.rows += len(encoded)
        self.stats.batches += 1
        self.stats.tokens += int(batch["attention_mask"].sum())
        self.stats.slots += batch["attention_mask"].numel()
        out = self.module.predict_scores(batch["input_ids"].to(self.device, non_blocking=True),
                                         batch["attention_mask"].to(self.device, non_blocking=True))
        return grades_from_outputs(out, [e.truncated for e in encoded])

    # -- relative grading ------------------------------------------------------------------------
    def compare(self, instruction: str, response_a: str, response_b: str, rubric: str | dict | None = None,
                reference_answer: str | None = None, context: str | list[str] | None = None,
                tie_margin: float = 0.0) -> Comparison:
        """Which response is better, by grading each one alone (no position bias)."""
        shared = {"instruction": instruction, "rubric": rubric, "reference_answer": reference_answer, "context": context}
        grade_a, grade_b = self.grade_many([{**shared, "response": response_a}, {**shared, "response": response_b}])
        return compare_grades(grade_a, grade_b, tie_margin)


    # -- ranking ---------------------------------------------------------------------------------
    def rank(self, instruction: str, responses: list, rubric: str | dict | None = None,
             reference_answer: str | None = None, context: str | list[str] | None = None):
        """The answers in ``responses`` (texts, or objects with ``response`` and ``id``) best
        first, each graded alone: a ``Ranking`` (see ``phudge_lightning.rank.ranking``) with
        each answer's index, rank and score and, for the classification head, ``p_better``."""
        query = {"instruction": instruction, "responses": responses, "rubric": rubric,
                 "reference_answer": reference_answer, "context": context}
        return self.rank_many([query])[0]

    def rank_many(self, queries: Iterable, batch_size: int | None = None) -> list:
        """A ``Ranking`` per query (a row to rank, or a validated ``RankQuery``), in order; the
        answers of all the queries are graded together, in length-grouped batches."""
        from phudge_lightning.rank.ranking import RankQuery, rank_grades, validate_rank_row

        queries = [q if isinstance(q, RankQuery) else validate_rank_row(q, source="rank_many", row=i)
                   for i, q in enumerate(queries, 1)]
        grades = self.grade_many([r for q in queries for r in q.records], batch_size)
        rankings, start = [], 0
        for q in queries:
            rankings.append(rank_grades(grades[start:start + len(q.records)], q.items))
            start += len(q.records)
        return rankings


def compare_grades(grade_a: Grade, grade_b: Grade, tie_margin: float = 0.0) -> Comparison:
    a, b = grade_a.score, grade_b.score
    result = Comparison(winner=verdict(a, b, tie_margin), score_a=a, score_b=b,
                        margin=None if a is None or b is None else a - b)
    if grade_a.probabilities and grade_b.probabilities:
        result.p_a_better, result.p_tie = pairwise_probabilities(grade_a.probabilities, grade_b.probabilities)
    return result
