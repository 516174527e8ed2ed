"""Pairwise losses, mixed sources (absolute rows and pairs), and a mixed fit of a tiny model."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch

import losses
from conftest import write_jsonl
from datamodules import JudgeDataModule
from datamodules import mixing
from datamodules.records import Pair, Record
from phudge_lightning.model.module import JudgeModule

sigmoid = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731


def test_bradley_terry_against_the_formula():
    bt = losses.get_loss("bradley_terry")
    a, b = torch.tensor([3.0, 1.0]), torch.tensor([2.0, 2.5])
    hard = bt(a, b, torch.tensor([1.0, 1.0]))
    assert hard.item() == pytest.approx(-(math.log(sigmoid(1.0)) + math.log(sigmoid(-1.5))) / 2, rel=1e-6)
    # soft targets: p log s(d) + (1 - p) log s(-d)
    soft = bt(a, b, torch.tensor([0.75, 0.2]))
    expected = -((0.75 * math.log(sigmoid(1.0)) + 0.25 * math.log(sigmoid(-1.0)))
                 + (0.2 * math.log(sigmoid(-1.5)) + 0.8 * math.log(sigmoid(1.5)))) / 2
    assert soft.item() == pytest.approx(expected, rel=1e-6)
    scaled = losses.get_loss("bradley_terry", scale=2.0)(a[:1], b[:1], torch.tensor([1.0]))
    assert scaled.item() == pytest.approx(-math.log(sigmoid(2.0)), rel=1e-6)
    # b preferred is a preferred with the sides swapped
    assert bt(a, b, torch.tensor([0.0, 0.0])).item() == pytest.approx(bt(b, a, torch.tensor([1.0, 1.0])).item())


def test_soft_bradley_terry_is_least_where_the_score_gap_matches_the_preference():
    bt = losses.get_loss("bradley_terry")
    gaps = torch.linspace(-4, 4, 801)
    values = torch.stack([bt(g.view(1), torch.zeros(1), torch.tensor([0.8])) for g in gaps])
    assert gaps[values.argmin()].item() == pytest.approx(math.log(0.8 / 0.2), abs=0.02)


def test_margin_loss_against_the_formula():
    margin = losses.get_loss("margin", margin=0.5)
    a, b = torch.tensor([3.0, 2.0, 1.0, 2.0]), torch.tensor([2.9, 2.0, 3.0, 1.0])
    p = torch.tensor([1.0, 0.5, 0.0, 0.75])
    # |2p-1| * max(0, 0.5 - sign(2p-1)(a-b)): 0.4, 0 (tie), 0 (b well ahead), 0.5 * 0
    assert margin(a, b, p).item() == pytest.approx((0.4 + 0 + 0 + 0) / 4)
    assert margin(torch.tensor([2.0]), torch.tensor([2.0]), torch.tensor([0.75])).item() == pytest.approx(0.25)


@pytest.mark.parametrize("name", ["bradley_terry", "margin"])
def test_pairwise_gradient_raises_the_preferred_score(name):
    a, b = torch.tensor([2.0], requires_grad=True), torch.tensor([2.2], requires_grad=True)
    losses.get_loss(name)(a, b, torch.tensor([1.0])).backward()
    assert a.grad.item() < 0 < b.grad.item()  # descent raises a and lowers b


def test_a_user_registers_a_pairwise_loss():
    @losses.register_loss("test_hinge_squared", target="pairwise")
    def hinge_squared(score_a, score_b, preference, margin=1.0):
        sign = torch.sign(2 * preference - 1)
        return torch.relu(margin - sign * (score_a - score_b)).pow(2).mean()

    try:
        fn = losses.get_loss("test_hinge_squared", margin=0.5)
        assert fn(torch.tensor([1.0]), torch.tensor([1.0]), torch.tensor([1.0])).item() == pytest.approx(0.25)
        assert losses.get_entry("test_hinge_squared").target == "pairwise"
    finally:
        losses.LOSSES.pop("test_hinge_squared")


def test_a_loss_of_another_kind_is_refused_as_the_pair_loss(tiny_bert_dir):
    with pytest.raises(ValueError, match="target='pairwise'"):
        JudgeModule(backbone=str(tiny_bert_dir), pair_loss="mse")


def rec(instruction, response, score=None):
    return Record(instruction=instruction, response=response, score=score)


def test_validation_is_split_by_instruction_never_by_row():
    items = [Pair(rec(f"q{i % 30}", "x" * (i % 7 + 1)), rec(f"q{i % 30}", "y"), 1.0, i) for i in range(300)]
    train, val = mixing.split_by_instruction(items, 0.2, seed=3)
    assert val and train and len(train) + len(val) == 300
    assert not {p.instruction for p in train} & {p.instruction for p in val}
    assert mixing.split_by_instruction(items, 0.2, seed=3)[1] == val  # deterministic


def test_length_balancing_keeps_as_many_shorter_as_longer_preferred():
    longer = [Pair(rec("q", "long answer"), rec("q", "short"), 1.0) for _ in range(30)]
    shorter = [Pair(rec("q", "short"), rec("q", "long answer"), 0.9) for _ in range(10)]
    ties = [Pair(rec("q", "a"), rec("q", "bb"), 0.5)]
    kept = mixing.balance_by_length(longer + shorter + ties, seed=0)
    sides = [mixing.preferred_is_longer(p) for p in kept]
    assert sides.count(True) == sides.count(False) == 10 and sides.count(None) == 1


@pytest.mark.parametrize("val_balance", [False, True])
def test_val_balance_length_balances_the_held_out_pairs_only(tmp_path, tiny_bert_dir, val_balance):
    # 3 of 4 pairs prefer the longer answer, as AlpacaEval's do
    rows = [{"chosen": f"\n\nHuman: Tell me about bread {i}\n\nAssistant: " + ("Bread is flour, water and salt." if i % 4 else "No."),
             "rejected": f"\n\nHuman: Tell me about bread {i}\n\nAssistant: " + ("No." if i % 4 else "Bread is flour, water and salt.")}
            for i in range(200)]
    pairs = write_jsonl(tmp_path / "pairs.jsonl", rows)
    dm = JudgeDataModule(backbone=str(tiny_bert_dir), max_length=64,
                                      sources=[{"data": str(pairs), "val_fraction": 0.3, "val_balance_length": val_balance}])
    dm.setup("fit")
    sides = {name: [mixing.preferred_is_longer(p) for p in dm.sets[name].items] for name in ("train", "val")}
    assert sides["train"].count(True) > 2 * sides["train"].count(False)  # training pairs untouched
    longer, shorter = sides["val"].count(True), sides["val"].count(False)
    assert shorter > 0 and (longer == shorter) == val_balance


def test_source_weights_and_limits():
    items = list(range(10))
    assert len(mixing.weighted(items, 2.0, 0)) == 20 and len(mixing.weighted(items, 0.5, 0)) == 5
    assert len(mixing.sample(items, 4, 0, 0)) == 4
    with pytest.raises(ValueError, match="unknown keys"):
        mixing.Source.from_config({"data": "x", "wieght": 2})


def mixed_files(tmp_path):
    absolute = [{"instruction": f"Question {i} about python?", "response": "A good answer " * (i % 4 + 1), "score": 1 + i % 5}
                for i in range(24)]
    pairs = [{"chosen": f"\n\nHuman: Tell me about bread {i}\n\nAssistant: Bread is flour, water and salt.",
              "rejected": f"\n\nHuman: Tell me about bread {i}\n\nAssistant: No."} for i in range(24)]
    return write_jsonl(tmp_path / "abs.jsonl", absolute), write_jsonl(tmp_path / "pairs.jsonl", pairs)


@pytest.mark.parametrize("head,length_term", [("regression", False), ("classification", True)])
def test_a_mixed_fit_logs_pair_accuracy_beside_the_correlations(tmp_path, tiny_bert_dir, head, length_term):
    absolute, pairs = mixed_files(tmp_path)
    torch.manual_seed(0)
    module = JudgeModule(backbone=str(tiny_bert_dir), head=head, lora={"r": 2, "alpha": 4, "dropout": 0.0}, lr=1e-2,
                         pair_loss="bradley_terry", length_term=length_term)
    dm = JudgeDataModule(backbone=str(tiny_bert_dir), batch_size=6, max_length=96,
                                      sources=[{"data": str(absolute), "val_fraction": 0.3},
                                               {"data": str(pairs), "weight": 2.0, "val_fraction": 0.3,
                                                "balance_length": False}])
    trainer = L.Trainer(accelerator="cpu", max_steps=3, val_check_interval=3, limit_val_batches=4, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, use_distributed_sampler=False)
    trainer.fit(module, dm)
    metrics = trainer.callback_metrics
    assert trainer.global_step == 3
    for key in ("train/loss", "val/loss", "val/pair_accuracy", "val/pearson"):
        assert key in metrics and math.isfinite(float(metrics[key])), key
    assert 0 <= float(metrics["val/pair_accuracy"]) <= 1
    held_out = dm.stats[f"val_items/{pairs}"]
    assert 0 < held_out < 24 and dm.stats[f"train_items/{pairs}"] == 2 * (24 - held_out)  # weight 2: each pair twice
    assert (module.length_coef is not None) == length_term


def test_rubric_dropout_is_one_draw_for_both_sides_of_a_pair(tiny_bert_dir):
    from datamodules.datasets import ItemDataset
    from datamodules.prompt import PromptEncoder
    from datamodules.tokenizer import load_tokenizer

    rubric = {"criteria": "Kind?", **{f"score{k}_description": f"level {k}" for k in range(1, 6)}}
    pair = Pair(Record("Say hi.", "Hi!", rubric=rubric, reference_answer="Hello!"),
                Record("Say hi.", "Go.", rubric=rubric, reference_answer="Hello!"), 1.0)
    data = ItemDataset([pair] * 40, PromptEncoder(load_tokenizer(str(tiny_bert_dir)), max_length=64),
                       rubric_dropout=0.5, reference_dropout=0.5, seed=1)
    kinds = set()
    for index in range(40):
        a, b = (data._dropped(r, index, 0) for r in (pair.a, pair.b))
        assert (a.rubric is None, a.reference_answer is None) == (b.rubric is None, b.reference_answer is None)
        kinds.add((a.rubric is None, a.reference_answer is None))
        item = data[(index, 0)]
        assert item["pair"] and all(len(ids) <= 64 for ids in item["input_ids"])
    assert len(kinds) == 4  # all four prompt variants occur
