"""Any score scale: ``model.score_range`` (linked to ``data.score_range``) through the heads,
losses, metrics, records, fit, grade and evaluate; a 1-10 and a 0-1 judge at tiny scale."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import TOPICS, write_jsonl
from datamodules.prompt import render
from datamodules.records import Record, RecordError, score_scale, validate_record
from heads import get_head
from losses import get_loss, soft_targets
from phudge_lightning.metrics import RoundedAccuracy


# -- heads, losses and metrics on any number of classes -------------------------------------------
@pytest.mark.parametrize("score_range, classes", [((1, 5), 5), ((1, 10), 10), ((0, 1), 2), ((0, 100), 101)])
def test_classification_head_has_one_class_per_integer_score(score_range, classes):
    head = get_head("classification")(hidden_size=8, score_range=score_range)
    logits = head(torch.randn(3, 8))
    assert logits.shape == (3, classes)
    scores = head.scores(logits)
    assert ((scores >= score_range[0]) & (scores <= score_range[1])).all()
    certain = torch.full((1, classes), -50.0)
    certain[0, -1] = 50.0
    assert head.scores(certain).item() == pytest.approx(score_range[1])
    assert head.loss_target(torch.tensor([float(score_range[0])])).item() == 1  # class position 1..C


def test_regression_head_starts_in_the_middle_of_its_range():
    head = get_head("regression")(hidden_size=8, score_range=(0, 1))
    assert head.proj.bias.item() == pytest.approx(0.5)
    assert get_head("regression")(hidden_size=8, score_range=(1, 10)).proj.bias.item() == pytest.approx(5.5)


@pytest.mark.parametrize("classes", [2, 10])
def test_soft_targets_keep_the_score_as_their_mean_for_any_class_count(classes):
    positions = torch.tensor([1.0, classes, 1.5, classes - 0.25])
    t = soft_targets(positions, classes)
    assert t.shape == (4, classes) and torch.allclose(t.sum(-1), torch.ones(4))
    assert torch.allclose(t @ torch.arange(1, classes + 1, dtype=torch.float32), positions)


@pytest.mark.parametrize("classes", [2, 10])
@pytest.mark.parametrize("name", ["ce", "emd_squared", "emd_squared_summed", "emd"])
def test_distribution_losses_work_for_any_class_count(name, classes):
    loss = get_loss(name)
    target = torch.tensor([1.0, float(classes)])
    exact = torch.full((2, classes), -30.0)
    exact[0, 0] = exact[1, -1] = 30.0
    near, far = torch.full((1, classes), -30.0), torch.full((1, classes), -30.0)
    near[0, 1] = far[0, -1] = 30.0
    assert loss(exact, target).item() == pytest.approx(0.0, abs=1e-4)
    if name != "ce":  # ordinal: farther off costs more (with 2 classes near is far)
        assert loss(far, target[:1]).item() >= loss(near, target[:1]).item() > 0.1


@pytest.mark.parametrize("score_range, prediction, label, expected", [
    ((1, 10), [9.6, 2.2, 7.0], [10.0, 3.0, 7.0], 2 / 3),
    ((0, 1), [0.2, 0.7, 0.4], [0.0, 1.0, 1.0], 2 / 3),
])
def test_rounded_accuracy_on_other_ranges(score_range, prediction, label, expected):
    metric = RoundedAccuracy(score_range)
    metric.update(torch.tensor(prediction), torch.tensor(label))
    assert metric.compute().item() == pytest.approx(expected)


# -- records and prompts --------------------------------------------------------------------------
def test_records_are_checked_against_the_range():
    row = {"instruction": "q", "response": "a", "score": 8}
    with pytest.raises(RecordError, match="from 1 to 5, got 8"):
        validate_record(row)
    assert validate_record(row, score_range=(1, 10)).score == 8
    with score_scale((0, 1)):
        with pytest.raises(RecordError, match="must be from 0 to 1, got 8") as error:
            validate_record(row, source="f.jsonl", row=3)
        assert error.value.field == "score" and "f.jsonl, row 3" in str(error.value)
        assert validate_record({**row, "score": 0.25}).score == 0.25
    with pytest.raises(RecordError):  # the scale ends with the block
        validate_record({**row, "score": 0.25})
    with pytest.raises(ValueError, match="low < high"):
        with score_scale((5, 1)):
            pass


def test_the_prompt_names_the_range_and_keeps_the_default_one():
    record = Record(instruction="q", response="a", reference_answer="r")
    assert "an integer from 1 to 5" in render(record) and "a score of 5" in render(record)
    text = render(record, (1, 10))
    assert "an integer from 1 to 10" in text and "a score of 10" in text and "from 1 to 5" not in text


# -- fit, grade and evaluate at 1-10 and 0-1 ------------------------------------------------------
def scaled_rows(n: int, low: float, high: float, integer: bool) -> list[dict]:
    rows = []
    for i in range(n):
        instruction, response = TOPICS[i % len(TOPICS)]
        share = (i % 7) / 6
        score = low + share * (high - low)
        rows.append({"id": f"r{i}", "instruction": f"{instruction} ({i})", "response": f"{response} Case {i}.",
                     "score": round(score) if integer else round(score, 3),
                     **({"rubric": "helpfulness"} if i % 2 else {})})
    return rows


@pytest.mark.parametrize("score_range, head, integer", [((1, 10), "classification", True), ((0, 1), "regression", False)],
                         ids=["1-10-classification", "0-1-regression"])
def test_fit_grade_and_evaluate_on_another_scale(tmp_path, tiny_bert_dir, score_range, head, integer):
    from phudge_lightning.cli import lightning_cli
    from phudge_lightning.evaluate import main as evaluate_main
    from phudge_lightning.grade import main as grade_main
    from phudge_lightning.judge import Judge

    low, high = score_range
    data = write_jsonl(tmp_path / "train.jsonl", scaled_rows(24, low, high, integer))
    cli = lightning_cli([
        "fit", "--model.backbone", str(tiny_bert_dir), "--model.head", head, "--model.lr", "1e-3",
        "--model.lora", '{"r": 2, "alpha": 4, "dropout": 0.0}', "--model.score_range", json.dumps(list(score_range)),
        "--data.data", str(data), "--data.batch_size", "4", "--data.max_length", "256", "--data.val_fraction", "0.25",
        "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3", "--trainer.accelerator", "cpu", "--trainer.logger", "false",
        "--trainer.enable_checkpointing", "false", "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false", "--trainer.default_root_dir", str(tmp_path)])
    # The link: the data module read and prompted on the model's scale.
    assert tuple(cli.datamodule.hparams.score_range) == score_range
    assert cli.trainer.datamodule.sets["train"].encoder.score_range == score_range
    metrics = cli.trainer.callback_metrics
    assert torch.isfinite(metrics["val/loss"]) and "val/accuracy" in metrics
    ckpt = tmp_path / "judge.ckpt"
    cli.trainer.save_checkpoint(ckpt)

    judge = Judge.load(ckpt, device="cpu")  # the checkpoint remembers the scale
    assert judge.score_range == (float(low), float(high))
    grade = judge.grade("Why does bread need salt?", "Flavour.", rubric="helpfulness")
    if head == "classification":
        assert len(grade.probabilities) == high - low + 1 and low <= grade.score <= high
    assert judge.rank("Why does bread need salt?", ["Flavour.", "It makes the dough strong."]).answers[0].rank == 1

    # phudge grade: the judge's scores, on its scale, replace any input score.
    inputs = [{"instruction": "q", "response": "a", "score": high + 5}, {"instruction": "q", "response": "b", "rubric": "honesty"}]
    source, output = write_jsonl(tmp_path / "in.jsonl", inputs), tmp_path / "out.jsonl"
    assert grade_main(["--checkpoint", str(ckpt), "--input", str(source), "--output", str(output), "--device", "cpu"]) == 0
    graded = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(graded) == 2 and graded[0]["score"] != high + 5
    if head == "classification":
        assert all(low <= row["score"] <= high and len(row["probabilities"]) == high - low + 1 for row in graded)

    # phudge evaluate: the benchmark's scores are read on the judge's scale.
    bench = write_jsonl(tmp_path / "bench.jsonl", scaled_rows(8, low, high, integer) + [
        {"instruction": "q", "response": "a", "score": high + 5}])
    result = tmp_path / "result.json"
    assert evaluate_main(["--checkpoint", str(ckpt), "--benchmark", "feedback_collection_test", "--data", str(bench),
                          "--output", str(result), "--device", "cpu"]) == 0
    figures = json.loads(result.read_text())
    assert figures["n"] == 8 and figures["invalid"] == 1 and figures["score_range"] == [low, high]
    assert figures["mae"] is not None and figures["mae"] <= high - low


def test_the_causal_head_refuses_another_scale(tiny_llama_dir):
    from phudge_lightning.model.module import JudgeModule

    with pytest.raises(ValueError, match="1..5 only"):
        JudgeModule(backbone=str(tiny_llama_dir), head="causal", lora=None, score_range=(1, 10))


def test_phudge_data_checks_scores_against_a_given_range(tmp_path):
    from phudge_lightning.data.summary import summarize

    source = write_jsonl(tmp_path / "r.jsonl", [{"instruction": "q", "response": "a", "score": 8},
                                                 {"instruction": "q", "response": "b", "score": 11},
                                                 {"instruction": "q", "response": "c", "score": 3}])
    result, errors = summarize(str(source), backbone=None, score_range=(1, 10))
    assert (result["valid"], result["invalid"]) == (2, 1) and "from 1 to 10, got 11" in str(errors[0])
    result, errors = summarize(str(source), backbone=None)  # on 1..5, 8 is off the scale too
    assert (result["valid"], result["invalid"]) == (1, 2) and "from 1 to 5, got 8" in str(errors[0])


def test_phudge_data_counts_a_pair_file_in_rows_and_pairs(tmp_path, capsys):
    from phudge_lightning.data.summary import summarize

    rows = [{"chosen": "\n\nHuman: Hi?\n\nAssistant: Hello!", "rejected": "\n\nHuman: Hi?\n\nAssistant: Go."}] * 3
    source = write_jsonl(tmp_path / "pairs.jsonl", rows + [{"chosen": "\n\nHuman: Hi?\n\nAssistant: Hello!"}])
    result, errors = summarize(str(source), backbone=None)
    # four rows: three pairs (six responses, none with a rubric) and one row without its rejected answer
    assert {k: result[k] for k in ("rows", "valid", "invalid", "pairs", "unlabelled", "with_rubric")} == \
        {"rows": 4, "valid": 3, "invalid": 1, "pairs": 3, "unlabelled": 0, "with_rubric": 0}
    assert "rejected" in str(errors[0])
    broken = write_jsonl(tmp_path / "broken.jsonl", [{"chosen": "\n\nHuman: Hi?\n\nAssistant: Hello!"}])
    with pytest.raises(RecordError, match="holds no valid rows"):
        summarize(str(broken), backbone=None)
    from phudge_lightning.data.summary import main  # the command says so in one line, exit 2

    assert main(["--data", str(broken), "--backbone", "none"]) == 2
    out = capsys.readouterr()
    assert f"phudge data: {broken}, row -: holds no valid rows" in out.err
    assert f"invalid: {broken}, row 1, field" in out.out and "is missing" in out.out  # and why, row by row
