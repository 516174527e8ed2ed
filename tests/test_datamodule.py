"""JudgeDataModule: split, augmentation, lengths, padding, sampling, loaders."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch

from conftest import small_records, write_jsonl
from datamodules import JudgeDataModule, PromptEncoder, Record, load_tokenizer
from datamodules.batching import Collator, LengthGroupedBatchSampler
from datamodules.judge_datamodule import percentile_length
from datamodules.sources import demo_path


def make_dm(backbone, data, stage="fit", **kw) -> JudgeDataModule:
    kw.setdefault("batch_size", 4)
    dm = JudgeDataModule(data=str(data), backbone=str(backbone), **kw)
    dm.setup(stage)
    return dm


def instructions(dataset) -> list[str]:
    return list(dataset.table["instruction"])


@pytest.fixture(scope="module")
def records_200(tmp_path_factory):
    return write_jsonl(tmp_path_factory.mktemp("r200") / "r200.jsonl", small_records(200))


@pytest.fixture(scope="module")
def dm(tiny_llama_dir, small_records_file):
    return make_dm(tiny_llama_dir, small_records_file)


# -- split -----------------------------------------------------------------------------------

def test_split_95_5_deterministic_and_disjoint(tiny_llama_dir, records_200):
    a = make_dm(tiny_llama_dir, records_200, seed=1, val_fraction=0.05)
    b = make_dm(tiny_llama_dir, records_200, seed=1, val_fraction=0.05)
    c = make_dm(tiny_llama_dir, records_200, seed=2, val_fraction=0.05)
    train, val = instructions(a.sets["train"]), instructions(a.sets["val"])
    assert (len(train), len(val)) == (190, 10)
    assert not set(train) & set(val)
    assert set(train) | set(val) == {r["instruction"] for r in small_records(200)}
    assert val == instructions(b.sets["val"]) and train == instructions(b.sets["train"])
    assert set(val) != set(instructions(c.sets["val"]))
    assert (a.stats["train_rows"], a.stats["val_rows"]) == (190, 10)


def test_val_data_file_instead_of_split(tiny_llama_dir, small_records_file, tmp_path):
    val_file = write_jsonl(tmp_path / "val.jsonl", small_records(6))
    d = make_dm(tiny_llama_dir, small_records_file, val_data=val_file)
    assert len(d.sets["train"]) == 40 and len(d.sets["val"]) == 6


def test_empty_answers_are_training_rows(tiny_llama_dir, tmp_path):
    """A response that says nothing is a real answer with a (low) score: it is trained on, its
    prompt holding the response header with nothing under it. The file starts with a BOM."""
    rows = small_records(12)
    for i in (2, 7):
        rows[i] = {**rows[i], "response": "" if i == 2 else "  ", "score": 1}
    path = tmp_path / "with-empty.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + write_jsonl(tmp_path / "plain.jsonl", rows).read_bytes())
    d = make_dm(tiny_llama_dir, path, val_data=write_jsonl(tmp_path / "val.jsonl", small_records(3)),
                rubric_dropout=0.0, reference_dropout=0.0)
    train = d.sets["train"]
    assert len(train) == 12 and sorted(train.table["response"]).count("") == 1
    empty = next(i for i in range(len(train)) if train.table[i]["response"] == "")
    assert "###Response to evaluate:\n\n\n###" in train.encoder.text(train.record(empty))
    batch = next(iter(d.train_dataloader()))
    assert batch["input_ids"].shape[0] == 4


# -- augmentation ----------------------------------------------------------------------------

def _drops(dataset, indices, epochs):
    rubric, reference, both = [], [], []
    for epoch in epochs:
        for i in indices:
            r = dataset.record(i, epoch)
            rubric.append(r.rubric is None)
            reference.append(r.reference_answer is None)
            both.append(rubric[-1] and reference[-1])
    return np.array(rubric), np.array(reference), np.array(both)


def test_dropout_rates_and_independence(dm):
    train = dm.sets["train"]
    full = [i for i in range(len(train)) if train.table[i]["rubric"] and train.table[i]["reference_answer"]]
    assert len(full) >= 10
    epochs = range(math.ceil(4000 / len(full)))
    rubric, reference, both = _drops(train, full, epochs)
    assert len(rubric) >= 4000
    assert abs(rubric.mean() - 0.5) < 0.04
    assert abs(reference.mean() - 0.5) < 0.04
    assert abs(both.mean() - 0.25) < 0.04  # independent draws
    # Not the same draw for both fields, and no row always or never dropped.
    assert (rubric != reference).mean() > 0.4
    per_row = rubric.reshape(len(epochs), len(full)).mean(0)
    assert per_row.min() > 0.2 and per_row.max() < 0.8


def test_dropout_absent_fields_stay_absent(dm):
    train = dm.sets["train"]
    for i in range(len(train)):
        raw = train.table[i]
        for epoch in range(5):
            r = train.record(i, epoch)
            assert r.instruction == raw["instruction"] and r.response == raw["response"] and r.score == raw["score"]
            assert r.rubric in (None, raw["rubric"]) and r.reference_answer in (None, raw["reference_answer"])


def test_draws_vary_by_epoch_and_repeat_by_seed(tiny_llama_dir, small_records_file, dm):
    train = dm.sets["train"]
    indices = range(len(train))
    e0, e1 = _drops(train, indices, [0]), _drops(train, indices, [1])
    assert not (np.array_equal(e0[0], e1[0]) and np.array_equal(e0[1], e1[1]))
    again = make_dm(tiny_llama_dir, small_records_file).sets["train"]
    for epoch in (0, 3):
        a, b = _drops(train, indices, [epoch]), _drops(again, indices, [epoch])
        assert all(np.array_equal(x, y) for x, y in zip(a, b))
    # The same seed gives the same encoded items, epoch by epoch.
    assert train[(5, 2)]["input_ids"] == again[(5, 2)]["input_ids"]


def test_other_seed_other_draws(tiny_llama_dir, small_records_file, dm):
    other = make_dm(tiny_llama_dir, small_records_file, seed=7).sets["train"]
    mine = dm.sets["train"]
    # Compare on the same rows (the split differs by seed too): draw rows by their text.
    other_index = {text: i for i, text in enumerate(instructions(other))}
    common = [(i, other_index[t]) for i, t in enumerate(instructions(mine)) if t in other_index]
    same = [mine.record(i, e).rubric == other.record(j, e).rubric for i, j in common for e in range(10)]
    assert not all(same)


def test_validation_never_augmented(dm):
    val = dm.sets["val"]
    assert val.rubric_dropout == 0 and val.reference_dropout == 0
    encoder = PromptEncoder(dm.tokenizer, max_length=dm.max_length)
    for i in range(len(val)):
        raw = Record(**val.table[i])
        for epoch in range(20):
            assert val.record(i, epoch) == raw
            assert val[(i, epoch)]["input_ids"] == encoder.encode(raw).input_ids


def test_no_dropout_when_zero(tiny_llama_dir, small_records_file):
    train = make_dm(tiny_llama_dir, small_records_file, rubric_dropout=0.0, reference_dropout=0.0).sets["train"]
    for i in range(len(train)):
        assert train.record(i, 3) == Record(**train.table[i])


def test_items_carry_the_epoch_through_the_sampler(dm):
    loader = dm.train_dataloader()
    sampler = loader.batch_sampler
    seen = {}
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        seen[epoch] = [key for batch in sampler for key in batch]
        assert {e for _, e in seen[epoch]} == {epoch}
    assert [i for i, _ in seen[0]] != [i for i, _ in seen[1]]  # a new order each epoch


def test_lightning_sets_the_epoch_on_the_train_loader(dm):
    # Lightning calls set_epoch on loader.sampler / loader.batch_sampler.sampler only.
    from lightning.fabric.utilities.data import _set_sampler_epoch

    loader = dm.train_dataloader()
    _set_sampler_epoch(loader, 3)
    assert loader.batch_sampler.epoch == 3
    assert {e for batch in loader.batch_sampler for _, e in batch} == {3}


# -- lengths -----------------------------------------------------------------------------------

@pytest.mark.parametrize("q", [0, 37.5, 50, 90, 99, 100])
def test_percentile_length_matches_numpy(q):
    rng = np.random.default_rng(3)
    for _ in range(20):
        lengths = rng.integers(1, 3000, size=rng.integers(1, 50))
        expected = int(np.ceil(np.percentile(lengths, q)))
        assert percentile_length(lengths.tolist(), q) == expected
        assert percentile_length(lengths.tolist(), q) >= np.percentile(lengths, q)
    assert percentile_length([10, 11], 50) == 11  # 10.5 rounds up


@pytest.mark.parametrize("q", [99.0, 50.0])
def test_max_length_is_the_training_percentile(tiny_llama_dir, small_records_file, q):
    d = make_dm(tiny_llama_dir, small_records_file, length_percentile=q)
    measure = PromptEncoder(load_tokenizer(str(tiny_llama_dir)))
    lengths = [measure.length(Record(**row)) for row in d.sets["train"].table]
    assert max(lengths) < 512  # so the percentile, not the backbone's limit, decides
    assert d.max_length == math.ceil(np.percentile(lengths, q))
    assert d.stats["train_rows_shortened"] == sum(n > d.max_length for n in lengths)
    if q == 50.0:
        assert d.stats["train_rows_shortened"] > 0
    for name in ("train", "val"):
        assert d.sets[name].encoder.max_length == d.max_length
        for batch in d.train_dataloader() if name == "train" else d.val_dataloader():
            assert batch["input_ids"].shape[1] <= d.max_length


def test_backbone_limit_caps_max_length(tiny_llama_dir, small_records_file):
    d = make_dm(tiny_llama_dir, small_records_file, max_length=100_000)
    assert d.max_length == 512
    d = make_dm(tiny_llama_dir, small_records_file, length_percentile=None)
    assert d.max_length == 512


def test_fixed_max_length_is_used(tiny_llama_dir, small_records_file):
    d = make_dm(tiny_llama_dir, small_records_file, max_length=200, batch_size=8)
    assert d.max_length == 200
    batches = list(d.train_dataloader()) + list(d.val_dataloader())
    assert sum(len(b["index"]) for b in batches) == 40
    assert all(b["input_ids"].shape[1] <= 200 for b in batches)
    assert max(b["input_ids"].shape[1] for b in batches) == 200  # the rows are longer: they were cut
    assert all(length <= 200 for length in d.lengths["train"] + d.lengths["val"])


# -- padding and batches -----------------------------------------------------------------------

def _check_padding(batch, pad_id, side):
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert ids.shape == mask.shape and mask.dtype == torch.long
    assert (ids[mask == 0] == pad_id).all()
    edge = mask[:, -1] if side == "left" else mask[:, 0]
    assert edge.all()  # every row's real tokens reach the pooled edge
    for row in mask:
        real = row.nonzero().flatten()
        assert (real == torch.arange(real[0], real[-1] + 1)).all()  # contiguous
    assert (mask.sum(1) < mask.shape[1]).any(), "no padding in this batch: the test proves nothing"


def test_left_padding_for_decoders(dm):
    assert dm.tokenizer.padding_side == "left"
    batch = next(b for b in dm.train_dataloader() if (b["attention_mask"].sum(1) < b["input_ids"].shape[1]).any())
    _check_padding(batch, dm.tokenizer.pad_token_id, "left")
    assert batch["score"].dtype == torch.float32 and "labels" not in batch


def test_right_padding_for_bert(tiny_bert_dir, small_records_file):
    d = make_dm(tiny_bert_dir, small_records_file)
    assert d.tokenizer.padding_side == "right"
    batch = next(b for b in d.train_dataloader() if (b["attention_mask"].sum(1) < b["input_ids"].shape[1]).any())
    _check_padding(batch, d.tokenizer.pad_token_id, "right")


def test_collator_pads_labels_with_ignore_index():
    collate = Collator(pad_token_id=0, padding_side="left")
    batch = collate([{"input_ids": [5, 6, 7], "labels": [-100, 6, 7], "score": 2.0, "index": 3},
                     {"input_ids": [8], "labels": [8], "score": 4.5, "index": 9}])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [0, 0, 8]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [0, 0, 1]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [-100, -100, 8]]
    assert batch["score"].tolist() == [2.0, 4.5] and batch["index"].tolist() == [3, 9]


def test_collator_mixed_scores():
    # Rows to predict may or may not carry a score: a batch mixing both must still collate.
    collate = Collator(pad_token_id=0, padding_side="right")
    for scores in ((3.0, None), (None, 4.0)):
        batch = collate([{"input_ids": [1, 2], "score": s, "index": i} for i, s in enumerate(scores)])
        assert "score" not in batch and batch["input_ids"].tolist() == [[1, 2], [1, 2]]


def test_causal_batches_have_labels(tiny_llama_dir, small_records_file):
    d = make_dm(tiny_llama_dir, small_records_file, uses_lm_head=True)
    batch = next(iter(d.train_dataloader()))
    labels, mask = batch["labels"], batch["attention_mask"]
    assert labels.shape == batch["input_ids"].shape
    assert (labels[mask == 0] == -100).all()
    for row_ids, row_labels in zip(batch["input_ids"], labels):
        learnt = row_labels != -100
        assert learnt.any() and (row_labels[learnt] == row_ids[learnt]).all()
        assert row_ids[-1] == d.tokenizer.eos_token_id  # the completion ends each (left-padded) row
        text = d.tokenizer.decode(row_ids[learnt], skip_special_tokens=True)
        assert "[RESULT]" in text


# -- the sampler -------------------------------------------------------------------------------

@pytest.mark.parametrize("n,batch_size", [(1, 4), (37, 4), (100, 8), (101, 16), (250, 7)])
def test_sampler_covers_every_index_once(n, batch_size):
    lengths = np.random.default_rng(n).integers(5, 500, size=n)
    sampler = LengthGroupedBatchSampler(lengths, batch_size, shuffle=True, seed=3, mega=4)
    orders = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler) == math.ceil(n / batch_size)
        assert all(1 <= len(b) <= batch_size for b in batches)
        flat = [i for b in batches for i, _ in b]
        assert sorted(flat) == list(range(n))
        orders.append(flat)
    if n > 10:
        assert orders[0] != orders[1]
        sampler.set_epoch(0)
        assert [i for b in sampler for i, _ in b] == orders[0]  # reproducible


def test_sampler_groups_lengths():
    lengths = np.random.default_rng(0).integers(1, 1000, size=400)
    sampler = LengthGroupedBatchSampler(lengths, 8, shuffle=True, seed=0, mega=50)
    spread = np.mean([np.ptp(lengths[[i for i, _ in b]]) for b in sampler])
    rng = np.random.default_rng(1)
    random_spread = np.mean([np.ptp(rng.choice(lengths, 8, replace=False)) for _ in range(50)])
    assert spread < random_spread / 4


def test_sampler_eval_order_longest_first():
    lengths = [5, 50, 20, 50, 1]
    batches = list(LengthGroupedBatchSampler(lengths, 2, shuffle=False))
    assert [[i for i, _ in b] for b in batches] == [[1, 3], [2, 0], [4]]


@pytest.mark.parametrize("n,batch_size", [(37, 4), (40, 5), (3, 2), (101, 8)])
@pytest.mark.parametrize("shuffle", [True, False])
def test_sampler_shards_over_two_replicas(n, batch_size, shuffle):
    lengths = np.arange(n) * 3 % 17 + 1
    ranks = [LengthGroupedBatchSampler(lengths, batch_size, shuffle=shuffle, seed=5, num_replicas=2, rank=r)
             for r in (0, 1)]
    for epoch in (0, 1):
        for s in ranks:
            s.set_epoch(epoch)
        shards = [list(s) for s in ranks]
        assert len(shards[0]) == len(shards[1]) == len(ranks[0]) == math.ceil(math.ceil(n / batch_size) / 2)
        counts = Counter(i for shard in shards for b in shard for i, _ in b)
        assert set(counts) == set(range(n))  # every row seen by some rank
        total_batches = math.ceil(n / batch_size)
        assert sum(counts.values()) - n <= batch_size * (total_batches % 2)  # at most one batch repeated
        first = {i for b in shards[0] for i, _ in b}
        second = {i for b in shards[1] for i, _ in b}
        if total_batches % 2 == 0:
            assert not first & second


@pytest.mark.parametrize("replicas", [3, 4])
def test_sampler_more_ranks_than_batches(replicas):
    # One batch, more ranks: every rank must still get its step (else a rank hangs in a collective).
    shards = [list(LengthGroupedBatchSampler([3, 1, 2], 8, shuffle=False, num_replicas=replicas, rank=r))
              for r in range(replicas)]
    assert [len(s) for s in shards] == [1] * replicas
    assert all(sorted(i for i, _ in s[0]) == [0, 1, 2] for s in shards)


def test_sampler_rejects_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size"):
        LengthGroupedBatchSampler([1, 2], 0, shuffle=True)


# -- loaders -----------------------------------------------------------------------------------

def test_loader_with_two_workers(tiny_llama_dir, small_records_file):
    d = make_dm(tiny_llama_dir, small_records_file, num_workers=2, batch_size=8)
    batches = list(d.train_dataloader())
    assert len(batches) == math.ceil(38 / 8)
    assert sorted(i for b in batches for i in b["index"].tolist()) == list(range(38))
    assert all(b["input_ids"].shape[1] <= d.max_length for b in batches)


def test_test_and_predict_sets(tiny_llama_dir, small_records_file, tmp_path):
    # Rows to predict: some with a score, some without.
    unscored = write_jsonl(tmp_path / "p.jsonl", [{k: v for k, v in r.items() if k != "score" or i % 2}
                                                  for i, r in enumerate(small_records(5))])
    d = JudgeDataModule(data=str(small_records_file), backbone=str(tiny_llama_dir),
                                     test_data=str(small_records_file), predict_data=str(unscored))
    with pytest.raises(RuntimeError, match="no test data"):
        d.test_dataloader()
    d.setup("test")
    d.setup("predict")
    assert len(d.sets["test"]) == 40 and len(d.sets["predict"]) == 5
    batches = list(d.predict_dataloader())
    assert sorted(i for b in batches for i in b["index"].tolist()) == list(range(5))
    assert all("score" not in b for b in batches if len(b["index"]) == 5)
    assert d.max_length == 512  # no training rows to take a percentile of: the backbone's limit


@pytest.mark.embedded
@pytest.mark.parametrize("backbone", ["smollm2-135m", "minilm-l6"])
def test_embedded_backbones_on_demo(backbone):
    if not demo_path().exists():
        pytest.skip("datamodules/data/demo.jsonl not written yet")
    d = JudgeDataModule(data="demo", backbone=backbone, batch_size=4, limit=40)
    d.setup("fit")
    batch = next(iter(d.train_dataloader()))
    assert batch["input_ids"].shape[0] == 4 and batch["input_ids"].shape[1] <= d.max_length
    assert d.tokenizer.padding_side == ("right" if backbone == "minilm-l6" else "left")
    assert batch["score"].min() >= 1 and batch["score"].max() <= 5
