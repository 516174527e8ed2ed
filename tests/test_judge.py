"""The Judge API: order under length sorting, compare's ties, P(A better), the causal head's None."""

from __future__ import annotations

import itertools

import pytest

from datamodules.records import validate_record
from phudge_lightning.judge import Grade, Judge, compare_grades
from phudge_lightning.metrics import pairwise_probabilities
from phudge_lightning.model.module import JudgeModule

LORA = {"r": 2, "alpha": 4, "dropout": 0.0}


def make_judge(backbone, head: str, **kwargs) -> Judge:
    return Judge(JudgeModule(backbone=str(backbone), head=head, lora=LORA, **kwargs), device="cpu", batch_size=3)


@pytest.fixture(scope="module")
def regression_judge(tiny_llama_dir):
    return make_judge(tiny_llama_dir, "regression")


@pytest.fixture(scope="module")
def classification_judge(tiny_llama_dir):
    return make_judge(tiny_llama_dir, "classification")


def varied_records(n: int = 10) -> list[dict]:
    """Records whose lengths are far from sorted, so that length sorting reorders them."""
    words = "the steak should rest for five minutes so the juice stays in the meat".split()
    lengths = [1, 12, 3, 9, 2, 14, 5, 7, 4, 11, 6, 13][:n]
    return [{"instruction": f"Question {i}: how long should a steak rest?", "response": " ".join(words[:k] * (1 + i % 2)),
             "rubric": "Is it correct?" if i % 2 else None, "id": i} for i, k in enumerate(lengths)]


def test_grade_many_keeps_input_order_under_length_sorting(regression_judge):
    judge = regression_judge
    records = varied_records()
    lengths = [len(judge.encoder.encode(validate_record(r, require_score=False)).input_ids) for r in records]
    assert lengths != sorted(lengths, reverse=True)  # the batches really are built in another order
    batched = [g.score for g in judge.grade_many(records, batch_size=3)]
    alone = [judge.grade_many([r], batch_size=1)[0].score for r in records]
    assert len(set(round(s, 5) for s in alone)) > 3  # distinct scores, so a swap would show
    assert batched == pytest.approx(alone, abs=1e-4)
    streamed = [g.score for g in judge.iter_grades(records, batch_size=2, block=1)]
    assert streamed == pytest.approx(alone, abs=1e-4)


def test_grade_one(regression_judge):
    grade = regression_judge.grade("What is 2+2?", "4", rubric="Correct?", reference_answer="2 + 2 = 4")
    assert isinstance(grade.score, float) and grade.probabilities is None and grade.feedback is None


def test_compare_identical_responses_tie(regression_judge):
    result = regression_judge.compare("How long should a steak rest?", "Five minutes.", "Five minutes.")
    assert result.winner == "tie" and result.margin == 0.0 and result.score_a == result.score_b
    assert result.p_a_better is None  # the regression head has no distribution


def test_compare_tie_margin_on_a_real_pair(regression_judge):
    a, b = "Five minutes, so the juice stays in.", "the the the"
    result = regression_judge.compare("How long should a steak rest?", a, b)
    gap = abs(result.margin)
    assert gap > 0 and result.winner == ("A" if result.margin > 0 else "B")
    assert regression_judge.compare("How long should a steak rest?", a, b, tie_margin=gap + 1e-6).winner == "tie"
    assert regression_judge.compare("How long should a steak rest?", a, b, tie_margin=gap / 2).winner == result.winner
    # the verdict is position-free: swapping the two only swaps the winner
    swapped = regression_judge.compare("How long should a steak rest?", b, a)
    assert swapped.margin == pytest.approx(-result.margin, abs=1e-5)


@pytest.mark.parametrize("a, b, margin, winner", [
    (3.25, 3.0, 0.0, "A"), (3.0, 3.25, 0.0, "B"), (3.25, 3.0, 0.25, "tie"), (3.25, 3.0, 0.125, "A"),
    (3.0, 3.0, 0.0, "tie"), (None, 3.0, 1.0, "invalid"),
])
def test_compare_grades_tie_behaviour(a, b, margin, winner):
    result = compare_grades(Grade(score=a), Grade(score=b), tie_margin=margin)
    assert result.winner == winner
    assert result.margin == (None if a is None else a - b)


def test_pairwise_probabilities_by_hand():
    assert pairwise_probabilities([0, 0, 0, 0, 1], [1, 0, 0, 0, 0]) == pytest.approx((1.0, 0.0))
    assert pairwise_probabilities([0.2] * 5, [0.2] * 5) == pytest.approx((0.4, 0.2))
    assert pairwise_probabilities([0, 1, 0, 0, 0], [0, 0.5, 0.5, 0, 0]) == pytest.approx((0.0, 0.5))


def test_p_a_better_from_the_two_distributions(classification_judge):
    judge = classification_judge
    instruction, a, b = "Why does bread need salt?", "Salt adds flavour and makes the dough stronger.", "no"
    result = judge.compare(instruction, a, b)
    grade_a, grade_b = judge.grade(instruction, a), judge.grade(instruction, b)
    assert sum(grade_a.probabilities) == pytest.approx(1.0, abs=1e-5)
    assert grade_a.score == pytest.approx(sum(k * p for k, p in enumerate(grade_a.probabilities, 1)), abs=1e-4)
    pa, pb = grade_a.probabilities, grade_b.probabilities
    brute_better = sum(pa[i] * pb[j] for i, j in itertools.product(range(5), repeat=2) if i > j)
    brute_tie = sum(grade_a.probabilities[i] * grade_b.probabilities[i] for i in range(5))
    assert result.p_a_better == pytest.approx(brute_better, abs=1e-5)
    assert result.p_tie == pytest.approx(brute_tie, abs=1e-5)
    b_better = pairwise_probabilities(grade_b.probabilities, grade_a.probabilities)[0]
    assert result.p_a_better + result.p_tie + b_better == pytest.approx(1.0, abs=1e-5)


@pytest.fixture(scope="module")
def causal_judge(tiny_llama_dir):
    return make_judge(tiny_llama_dir, "causal", max_new_tokens=2)


def test_causal_generates_feedback(causal_judge):
    grade = causal_judge.grade("Say hi.", "hi")
    assert isinstance(grade.feedback, str)
    assert grade.score is None or 1 <= grade.score <= 5


def test_causal_missing_score_is_none(causal_judge, monkeypatch):
    module, tokenizer = causal_judge.module, causal_judge.tokenizer

    def generate(input_ids, attention_mask):  # a score only for prompts that ask for one
        texts = tokenizer.batch_decode(input_ids, skip_special_tokens=True)
        return ["Feedback: fine. [RESULT] 4" if "scored" in t else "Feedback: rambling on, no result" for t in texts]

    def generate_scores(backbone, tokenizer, input_ids, attention_mask, max_new_tokens):
        texts = generate(input_ids, attention_mask)  # the head's own parsing of what it wrote
        return {"score": module.head.scores(texts), "text": texts}

    monkeypatch.setattr(module.head, "generate_scores", generate_scores)
    grades = causal_judge.grade_many([{"instruction": "Say hi.", "response": "a much longer answer that is scored"},
                                      {"instruction": "Say hi.", "response": "hi"}])
    assert [g.score for g in grades] == [4.0, None]
    assert grades[1].feedback == "Feedback: rambling on, no result"
    result = compare_grades(*grades)
    assert result.winner == "invalid" and result.margin is None and result.score_b is None


def test_lora_scale_interpolates_between_the_pretrained_and_the_trained_backbone(tiny_llama_dir, tmp_path):
    """W = W0 + lambda (alpha/r) B A: lambda 0 grades as the adapter's B set to zero (the
    pretrained backbone under the trained head), 1 as trained, and 0.5 as B halved by hand;
    ``phudge export --lora-scale`` writes a judge that grades as ``Judge(lora_scale=)``."""
    import copy

    import torch

    from conftest import judge_module
    from phudge_lightning.export.command import main as export_main
    from phudge_lightning.formats import save

    module = judge_module(tiny_llama_dir, "regression", seed=5)
    records = varied_records(6)

    def scores(m, **kw):
        return [g.score for g in Judge(copy.deepcopy(m), device="cpu", **kw).grade_many(records)]

    def with_b_times(factor):
        other = copy.deepcopy(module)
        with torch.no_grad():
            for name, p in other.backbone.named_parameters():
                if "lora_B" in name:
                    p.mul_(factor)
        return other

    trained, half, none = scores(module), scores(module, lora_scale=0.5), scores(module, lora_scale=0.0)
    assert trained == pytest.approx(scores(module, lora_scale=1.0))
    assert half == pytest.approx(scores(with_b_times(0.5)), abs=1e-5)
    assert none == pytest.approx(scores(with_b_times(0.0)), abs=1e-5)
    assert max(abs(a - b) for a, b in zip(trained, none)) > 1e-3  # the adapter matters: the checks could fail
    assert max(abs(a - b) for a, b in zip(half, none)) > 1e-4

    folder = save(module, tmp_path / "judge", "judge")
    assert export_main(["--checkpoint", str(folder), "--output", str(tmp_path / "wise"), "--lora-scale", "0.5"]) == 0
    assert [g.score for g in Judge.load(tmp_path / "wise", device="cpu").grade_many(records)] == pytest.approx(half, abs=1e-5)
    import json

    assert json.loads((tmp_path / "wise" / "judge.json").read_text())["lora_scale"] == 0.5  # it says it is not as trained
    assert "lora_scale" not in json.loads((folder / "judge.json").read_text())
    # Exported again, it keeps its scale (the module carries the one it was read with); scaled
    # again, the scales multiply, as the weights do.
    assert export_main(["--checkpoint", str(tmp_path / "wise"), "--output", str(tmp_path / "again")]) == 0
    assert json.loads((tmp_path / "again" / "judge.json").read_text())["lora_scale"] == 0.5
    assert [g.score for g in Judge.load(tmp_path / "again", device="cpu").grade_many(records)] == pytest.approx(half, abs=1e-5)
    assert export_main(["--checkpoint", str(tmp_path / "again"), "--output", str(tmp_path / "quarter"), "--lora-scale", "0.5"]) == 0
    assert json.loads((tmp_path / "quarter" / "judge.json").read_text())["lora_scale"] == 0.25
    quarter = [g.score for g in Judge.load(tmp_path / "quarter", device="cpu").grade_many(records)]
    assert quarter == pytest.approx(scores(with_b_times(0.25)), abs=1e-5)


def test_lora_scale_needs_an_adapter(tiny_llama_dir, tmp_path, capsys):
    from phudge_lightning.export.command import main as export_main
    from phudge_lightning.formats import save

    full = JudgeModule(backbone=str(tiny_llama_dir), head="regression", lora=None)
    with pytest.raises(ValueError, match="LoRA adapter"):
        Judge(full, device="cpu", lora_scale=0.5)
    folder = save(full, tmp_path / "full", "judge")
    assert export_main(["--checkpoint", str(folder), "--output", str(tmp_path / "wise"), "--lora-scale", "0.5"]) == 2
    assert "needs a judge with a LoRA adapter" in capsys.readouterr().err
