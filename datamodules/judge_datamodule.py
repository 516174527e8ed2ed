"""``JudgeDataModule``: any grading source (Feedback Collection, a file, a hub set, several
mixed) as the judge's batches.

- a deterministic 95/5 train/validation split by seed, or a given validation file;
- the paper's augmentation on the training split only: the rubric is dropped with probability
  ``rubric_dropout`` and, independently, the reference answer with ``reference_dropout``, drawn
  afresh for every row and epoch from (seed, epoch, row), so runs are reproducible;
- the maximum length is the ``length_percentile`` (99th) of the training rows' token lengths,
  under the backbone's own limit; longer rows are shortened by ``PromptEncoder``;
- length-grouped batches padded to the longest row, on the side the backbone's pooling needs;
- a run resumed from a mid-epoch checkpoint skips the batches of that epoch it already trained on.
"""

from __future__ import annotations

import logging
import math
import warnings

import datasets
import lightning as L
import numpy as np
from torch.utils.data import DataLoader

from datamodules import mixing
from datamodules.batching import Collator, LengthGroupedBatchSampler
from datamodules.datasets import GradingDataset, ItemDataset, mixing_length, to_dataset
from datamodules.prompt import PromptEncoder, token_budget
from datamodules.records import Pair, Record, score_scale
from datamodules.sources import DEMO, load_items, load_records
from datamodules.tokenizer import load_tokenizer

log = logging.getLogger(__name__)

# Lightning files the data module's state under its class's name; checkpoints written before
# the class was named for what it serves hold it under these.
FORMER_NAMES = ("FeedbackCollectionDataModule",)


def percentile_length(lengths, percentile: float) -> int:
    """The ``percentile``-th token length, rounded up (numpy's linear interpolation)."""
    return int(math.ceil(np.percentile(np.asarray(lengths), percentile)))


class JudgeDataModule(L.LightningDataModule):
    """The judge's data: any grading source (a file, a hub set, the demo, several mixed) as batches"""

    def __init__(
        self,
        data: str = DEMO,
        backbone: str = "smollm2-135m",
        uses_lm_head: bool = False,
        format: str = "auto",
        val_data: str | None = None,
        test_data: str | None = None,
        predict_data: str | None = None,
        val_fraction: float = 0.05,
        seed: int = 42,
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        rubric_dropout: float = 0.5,
        reference_dropout: float = 0.5,
        length_percentile: float | None = 99.0,
        max_length: int | None = None,
        skip_invalid: bool = False,
        use_chat_template: bool = True,
        layout: str = "prometheus",
        limit: int | None = None,
        score_range: tuple[float, float] = (1, 5),
        sources: list[dict] | None = None,
    ):
        """
        Args:
            data: ``demo``, a local json/jsonl/parquet file, or a hub dataset name
                (``prometheus-eval/Feedback-Collection``).
            backbone: the model whose tokenizer encodes the prompts (linked from ``model.backbone``).
            uses_lm_head: the head predicts with the backbone's language-model head (linked
                from the class of ``model.head``, e.g. the causal head): training and validation
                prompts then carry the feedback and ``[RESULT] n`` as the completion to learn.
            format: ``auto``, ``records``, ``feedback_collection`` or ``prometheus``.
            val_data: a validation file; without one, ``val_fraction`` of ``data`` is held out.
            test_data: a file for ``phudge test`` (a benchmark with scores).
            predict_data: a file for ``phudge predict`` (scores not needed).
            val_fraction: the held-out share when no ``val_data`` is given (the paper's 5%).
            seed: the split, the batch order and the augmentation draws.
            batch_size: training rows per batch; ``eval_batch_size`` defaults to twice that.
            rubric_dropout: probability of leaving the rubric out of a training prompt.
            reference_dropout: probability (independent) of leaving the reference answer out.
            length_percentile: the maximum length is this percentile of the training rows'
                token lengths (the paper's 99th); None keeps the backbone's own limit.
            max_length: a fixed maximum length instead of the percentile.
            skip_invalid: skip and count bad rows instead of stopping at the first.
            use_chat_template: wrap the prompt in the tokenizer's chat template when it has one.
            layout: ``prometheus`` (the paper's grading prompt), ``conversation`` (the
                instruction as the user's turn, the response as the assistant's: the chat a
                reward model reads; see ``datamodules.conversation``), or ``phudge`` (the PHUDGE
                authors' own prompt, Phi-3's markup as text: ``datamodules.phudge_prompt``).
            limit: read at most this many valid rows (quick runs).
            score_range: ``[low, high]`` of the scores (linked from ``model.score_range``): rows
                are checked against it and the prompt asks for a score in it.
            sources: several sources instead of ``data``, absolute rows and pairs mixed, each a
                mapping with ``data`` and optional ``format``, ``split``, ``weight``, ``limit``,
                ``val_fraction``, ``val_limit``, ``balance_length``, ``val_balance_length``, ``where`` (see
                ``datamodules.mixing``); validation is split by instruction, per source.
        """
        super().__init__()
        self.save_hyperparameters()
        self.tokenizer = None
        self.max_length: int | None = max_length
        self.sets: dict[str, GradingDataset] = {}
        self.lengths: dict[str, list[int]] = {}
        self.stats: dict[str, float] = {}
        self._train_sampler: LengthGroupedBatchSampler | None = None
        self._resume_at: tuple[int, int] | None = None  # (epoch, batches) from a checkpoint
        # Whether the judge reads a rubric and a reference answer: set from the training prompts
        # (False when none held one), or from a checkpoint's prompt settings.
        self.reads: dict[str, bool] = {}

    # -- loading -------------------------------------------------------------------------------
    def _load(self, spec: str, *, require_score: bool = True) -> list[Record]:
        h = self.hparams
        with score_scale(h.score_range):  # every format's reader checks scores against it
            records, errors = load_records(spec, format=h.format, skip_invalid=h.skip_invalid,
                                           require_score=require_score, limit=h.limit)
        self.stats[f"invalid_rows/{spec}"] = len(errors)
        return records

    def _encoder(self, with_completion: bool, max_length: int | None) -> PromptEncoder:
        return PromptEncoder(self.tokenizer, max_length=max_length, use_chat_template=self.hparams.use_chat_template, **self.reads,
                             with_completion=with_completion, score_range=tuple(self.hparams.score_range),
                             layout=self.hparams.layout)

    def _lengths(self, table: datasets.Dataset, encoder: PromptEncoder) -> list[int]:
        return [encoder.length(Record(**row)) for row in table]

    def setup(self, stage: str | None = None) -> None:
        h = self.hparams
        if self.tokenizer is None:
            self.tokenizer = load_tokenizer(h.backbone)
        causal = h.uses_lm_head
        if stage in (None, "fit", "validate") and "train" not in self.sets and h.sources:
            self._setup_sources()
        if stage in (None, "fit", "validate") and "train" not in self.sets:
            table = to_dataset(self._load(h.data))
            if h.val_data:
                train, val = table, to_dataset(self._load(h.val_data))
            else:
                split = table.train_test_split(test_size=h.val_fraction, seed=h.seed, shuffle=True)
                train, val = split["train"], split["test"]
            self._set_train_val(train, val, GradingDataset, lambda row, encoder: encoder.length(Record(**row)), causal)
        for name, spec, scored in (("test", h.test_data, True), ("predict", h.predict_data, False)):
            if stage in (None, name) and spec and name not in self.sets:
                table = to_dataset(self._load(spec, require_score=scored))
                if self.max_length is None:
                    self._set_max_length(None)
                encoder = self._encoder(causal and scored, self.max_length)
                self.sets[name] = GradingDataset(table, encoder)
                self.lengths[name] = [min(n, self.max_length) for n in self._lengths(table, self._encoder(False, None))]

    @property
    def prompt_settings(self) -> dict:
        """How prompts are built: the token budget, the chat template and the layout. Saved in this
        module's state (so in every checkpoint), read back by ``Judge.load`` and by test/predict."""
        return {"max_length": self.max_length, "use_chat_template": self.hparams.use_chat_template,
                "layout": self.hparams.layout, **self.reads}

    def _setup_sources(self) -> None:
        """Train and validation sets from ``sources``: records and pairs, split by instruction."""
        h = self.hparams
        if h.uses_lm_head:
            raise ValueError("data.sources trains the regression and classification heads; the causal head reads data")
        train, val = [], []
        for number, spec in enumerate(h.sources):
            source = mixing.Source.from_config(spec)
            items, errors, _ = load_items(source.data, format=source.format, skip_invalid=h.skip_invalid,
                                          split=source.split)
            self.stats[f"invalid_rows/{source.data}"] = len(errors)
            items = mixing.filtered(items, source.where)
            fraction = h.val_fraction if source.val_fraction is None else source.val_fraction
            tr, va = mixing.split_by_instruction(items, fraction, h.seed)
            if source.balance_length:
                tr = mixing.balance_by_length(tr, h.seed + number)
            tr = mixing.weighted(mixing.sample(tr, source.limit, h.seed, number), source.weight, h.seed + number)
            if source.val_balance_length:
                va = mixing.balance_by_length(va, h.seed + 100 + number)
            va = mixing.sample(va, source.val_limit, h.seed, 100 + number)
            pairs = sum(isinstance(it, Pair) for it in tr)
            log.info("%s: %d training items (%d pairs), %d validation items", source.data, len(tr), pairs, len(va))
            self.stats.update({f"train_items/{source.data}": len(tr), f"val_items/{source.data}": len(va)})
            train += tr
            val += va
        self._set_train_val(train, val, ItemDataset, mixing_length, False)

    def _set_train_val(self, train, val, dataset: type, length_of, causal: bool) -> None:
        """The training and validation sets of ``train``/``val`` (a table's rows, or records and
        pairs): the maximum length from the training lengths (``length_of(item, encoder)``), its
        stats and log line, the encoded sets (augmented for training) and their lengths for the
        length-grouped batches."""
        h = self.hparams
        measure = self._encoder(causal, None)
        train_lengths = [length_of(item, measure) for item in train]
        self._set_max_length(train_lengths)
        over = sum(n > self.max_length for n in train_lengths)
        self.stats.update({"max_length": self.max_length, "train_rows": len(train), "val_rows": len(val),
                           "train_rows_shortened": over})
        log.info("max_length %d (p%s of %d training items); %d (%.1f%%) will be shortened",
                 self.max_length, h.length_percentile, len(train), over, 100 * over / max(len(train), 1))
        self.reads = {"reads_rubric": h.rubric_dropout < 1 and holds(train, "rubric"),
                      "reads_reference": h.reference_dropout < 1 and holds(train, "reference_answer")}
        encoder = self._encoder(causal, self.max_length)
        self.sets["train"] = dataset(train, encoder, rubric_dropout=h.rubric_dropout,
                                     reference_dropout=h.reference_dropout, seed=h.seed)
        self.sets["val"] = dataset(val, encoder)
        self.lengths["train"] = [min(n, self.max_length) for n in train_lengths]
        self.lengths["val"] = [min(length_of(item, measure), self.max_length) for item in val]

    def use_prompt_settings(self, settings: dict) -> None:
        """Build test and predict prompts as the judge read in training (its checkpoint's
        ``prompt_settings``): its layout always, since a judge read another way grades noise, and
        its token budget unless ``max_length`` was set explicitly. Sets already built are rebuilt."""
        changed = False
        reads = {key: settings[key] for key in ("reads_rubric", "reads_reference") if key in settings}
        if reads != self.reads:
            self.reads, changed = reads, True
        layout = settings.get("layout", "prometheus")
        if layout != self.hparams.layout:
            log.info("prompts in the judge's %r layout (the data config says %r)", layout, self.hparams.layout)
            self.hparams.layout, changed = layout, True
        max_length = settings.get("max_length")
        if self.hparams.max_length is None and max_length and max_length != self.max_length:
            self.max_length, changed = max_length, True
        if not changed:
            return
        rebuild = [name for name in ("test", "predict") if name in self.sets]
        for name in rebuild:
            del self.sets[name]
            self.setup(name)

    def _set_max_length(self, lengths) -> None:
        h = self.hparams
        if h.max_length is not None:
            chosen = h.max_length
        elif h.length_percentile is not None and lengths:
            chosen = percentile_length(lengths, h.length_percentile)
        else:
            chosen = token_budget(self.tokenizer) or 4096
        self.max_length = token_budget(self.tokenizer, chosen)

    # -- loaders -------------------------------------------------------------------------------
    def _loader(self, name: str, shuffle: bool, batch_size: int) -> DataLoader:
        if name not in self.sets:
            raise RuntimeError(f"no {name} data: set data.{name}_data" if name in ("test", "predict") else f"setup() made no {name} set")
        trainer = getattr(self, "trainer", None)
        replicas, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        sampler = LengthGroupedBatchSampler(self.lengths[name], batch_size, shuffle=shuffle, seed=self.hparams.seed,
                                            num_replicas=replicas, rank=rank)
        return DataLoader(self.sets[name], batch_sampler=sampler, num_workers=self.hparams.num_workers,
                          collate_fn=Collator(self.tokenizer.pad_token_id, self.tokenizer.padding_side),
                          persistent_workers=False)

    @property
    def _eval_batch_size(self) -> int:
        return self.hparams.eval_batch_size or 2 * self.hparams.batch_size

    def train_dataloader(self):
        loader = self._loader("train", True, self.hparams.batch_size)
        self._train_sampler = loader.batch_sampler
        self._apply_resume()
        return loader

    # -- resuming mid-epoch ------------------------------------------------------------------------
    # Lightning restores its loop counters on ``--ckpt_path``, but a plain loader would restart the
    # epoch from its first batch. The checkpoint therefore carries the training position (epoch,
    # batches trained in it) in this module's state, and the sampler skips those batches once.
    # The state also carries the prompt settings, so that a checkpoint knows how its judge read.
    def state_dict(self) -> dict:
        state = {"prompt_settings": self.prompt_settings} if self.max_length else {}
        trainer = self.trainer
        if trainer is None:
            return state
        fit_loop = trainer.fit_loop
        return {**state, "train_position": [fit_loop.epoch_progress.current.processed,
                                            fit_loop.epoch_loop.batch_progress.current.processed]}

    def load_state_dict(self, state_dict: dict) -> None:
        trainer = self.trainer
        if trainer is not None and trainer.state.fn in ("test", "predict"):
            # test/predict --ckpt_path: Lightning restores after setup, so these prompts were built
            # with settings derived here; the judge's own (layout, budget) are the ones to grade with.
            self.use_prompt_settings(state_dict.get("prompt_settings") or {})
            return
        self._resume_at = tuple(state_dict.get("train_position", (0, 0)))
        self._apply_resume()  # (some strategies restore after the loader was built)

    def _apply_resume(self) -> None:
        sampler, position = self._train_sampler, self._resume_at
        if sampler is None or position is None:
            return
        self._resume_at = None
        if sampler.resume(*position):
            log.info("resuming epoch %d after its %d trained batches: the loader skips them", *position)
            # Lightning warns that a plain loader is not resumable mid-epoch; this one is.
            warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch")

    def val_dataloader(self):
        return self._loader("val", False, self._eval_batch_size)

    def test_dataloader(self):
        return self._loader("test", False, self._eval_batch_size)

    def predict_dataloader(self):
        return self._loader("predict", False, self._eval_batch_size)


def adopt_former_state(checkpoint: dict) -> None:
    """Files the data module's state of a checkpoint written under a former class name (see
    ``FORMER_NAMES``) under ``JudgeDataModule``, so that Lightning restores it (the training
    position, the prompt settings); called by the module's ``on_load_checkpoint``, which Lightning
    runs before it restores the data module."""
    for name in FORMER_NAMES:
        if name in checkpoint and JudgeDataModule.__qualname__ not in checkpoint:
            checkpoint[JudgeDataModule.__qualname__] = checkpoint.pop(name)


def holds(train, field: str) -> bool:
    """Whether any training record (or pair's record, or table row) has ``field``."""
    if isinstance(train, datasets.Dataset):
        return field in train.column_names and any(value is not None for value in train[field])
    records = (r for item in train for r in ((item.a, item.b) if isinstance(item, Pair) else (item,)))
    return any(getattr(r, field, None) is not None for r in records)
