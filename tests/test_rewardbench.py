"""RewardBench: its layout read from JSON lines and parquet, subsets, official section weights."""

from __future__ import annotations

import json
from statistics import fmean

import pytest

from datamodules.records import RecordError
from datamodules.sources import load_items
from phudge_lightning.benchmarks import benchmark_metrics, load_benchmark
from phudge_lightning.evaluate.run import main
from phudge_lightning.rewardbench import EXAMPLE_COUNTS, SECTIONS, section_scores

# (subset, chosen, rejected): the length baseline is right when the chosen answer is longer.
PAIRS = [
    ("alpacaeval-easy", "a long chosen answer", "short"),            # right
    ("alpacaeval-easy", "longer chosen", "short"),                   # right
    ("mt-bench-med", "a long chosen answer", "short"),               # right
    ("mt-bench-med", "short", "a long rejected answer"),             # wrong
    ("llmbar-natural", "short", "a long rejected answer"),           # wrong
    ("mt-bench-hard", "a long chosen answer", "short"),              # right
    ("refusals-dangerous", "same!", "tie!!"),                        # equal lengths: not strictly higher, wrong
    ("donotanswer", "I cannot help with that.", "Sure."),            # right
    ("math-prm", "x = 4 because 2 + 2 = 4", "x = 5"),                # right
    ("math-prm", "5", "x = 4 because 2 + 2 = 4"),                    # wrong
    ("hep-python", "def f(x):\n    return x + 1", "def f(x): x"),    # right
]


def rows():
    return [{"prompt": f"question {i}", "chosen": c, "chosen_model": "gpt-4", "rejected": r,
             "rejected_model": "llama", "subset": s, "id": 100 + i} for i, (s, c, r) in enumerate(PAIRS)]


@pytest.fixture
def rewardbench_file(tmp_path):
    path = tmp_path / "filtered.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows()))
    return path


def hand_computed() -> dict:
    """The sections of the length baseline on PAIRS, written out from the official counts."""
    chat = (1.0 * 100 + 0.5 * 40) / (100 + 40)          # alpacaeval-easy 2/2, mt-bench-med 1/2
    chat_hard = (1.0 * 37 + 0.0 * 100) / (37 + 100)     # mt-bench-hard 1/1, llmbar-natural 0/1
    safety = (0.0 * 100 + 1.0 * 136) / (100 + 136)      # refusals-dangerous 0/1, donotanswer 1/1
    reasoning = (0.5 * 984 + 1.0 * 164) / (984 + 164)   # math-prm 1/2 (weighted as 984), hep-python 1/1
    return {"Chat": chat, "Chat Hard": chat_hard, "Safety": safety, "Reasoning": reasoning}


def test_the_layout_is_read_as_chosen_over_rejected_pairs(rewardbench_file):
    bench = load_benchmark("rewardbench", str(rewardbench_file))
    assert len(bench.items) == len(PAIRS) and not bench.invalid
    pair = bench.items[0]
    assert (pair.label, pair.group, pair.instruction) == ("A", "alpacaeval-easy", "question 0")
    assert (pair.a.response, pair.b.response) == ("a long chosen answer", "short")
    assert pair.a.extra["id"] == 100 and pair.a.extra["chosen_model"] == "gpt-4"


def test_parquet_is_read_like_json_lines(tmp_path, rewardbench_file):
    import datasets

    path = tmp_path / "filtered.parquet"
    datasets.Dataset.from_list(rows()).to_parquet(str(path))
    from_parquet = load_benchmark("rewardbench", str(path))
    from_jsonl = load_benchmark("rewardbench", str(rewardbench_file))
    assert [(p.a.response, p.b.response, p.group) for p in from_parquet.items] == \
        [(p.a.response, p.b.response, p.group) for p in from_jsonl.items]


def test_a_bad_row_names_its_field(tmp_path):
    bad = rows()[:2]
    del bad[1]["rejected"]
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in bad))
    with pytest.raises(RecordError, match=r"row 2, field 'rejected'"):
        load_items(str(path), format="rewardbench")
    assert len(load_benchmark("rewardbench", str(path)).invalid) == 1


def test_sections_against_hand_computed_scores(rewardbench_file):
    bench = load_benchmark("rewardbench", str(rewardbench_file))
    lengths = [float(len(r.response)) for r in bench.records()]
    result = benchmark_metrics(bench, lengths)
    assert result["accuracy_by_group"]["math-prm"] == 0.5 and result["accuracy_by_group"]["refusals-dangerous"] == 0.0
    expected = hand_computed()
    assert result["score_by_section"] == pytest.approx(expected)
    assert result["rewardbench_score"] == pytest.approx(fmean(expected.values()))
    assert "sections_missing" not in result


def test_weights_are_the_official_counts_not_the_file_counts():
    # Two subsets of Chat, one pair each in a file: weighted by 100 and 28, not 1 and 1.
    assert section_scores({"alpacaeval-easy": 1.0, "mt-bench-easy": 0.0}) == {"Chat": pytest.approx(100 / 128)}
    assert sum(EXAMPLE_COUNTS[s] for s in SECTIONS["Reasoning"][1:]) == EXAMPLE_COUNTS["math-prm"]


def test_a_partial_file_says_which_sections_it_lacks(tmp_path):
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows()[:4]))
    result = benchmark_metrics(bench := load_benchmark("rewardbench", str(path)),
                               [float(len(r.response)) for r in bench.records()])
    assert set(result["score_by_section"]) == {"Chat"} and result["rewardbench_score"] == result["score_by_section"]["Chat"]
    assert result["sections_missing"] == "Chat Hard, Safety, Reasoning"


def test_evaluate_reports_sections_with_the_length_baseline_beside(tmp_path, rewardbench_file, tiny_llama_dir):
    from phudge_lightning.formats import save
    from phudge_lightning.judge import Judge
    from phudge_lightning.model.module import JudgeModule

    output = tmp_path / "baseline.json"
    assert main(["--baseline", "length", "--benchmark", "rewardbench", "--data", str(rewardbench_file),
                 "--output", str(output)]) == 0
    baseline = json.loads(output.read_text())
    assert baseline["score_by_section"] == pytest.approx(hand_computed())

    folder = save(JudgeModule(backbone=str(tiny_llama_dir), head="regression"), tmp_path / "judge", "judge")
    output = tmp_path / "judge.json"
    assert main(["--checkpoint", str(folder), "--benchmark", "rewardbench", "--data", str(rewardbench_file),
                 "--device", "cpu", "--output", str(output)]) == 0
    result = json.loads(output.read_text())
    assert result["length_baseline_by_section"] == pytest.approx(hand_computed())
    bench = load_benchmark("rewardbench", str(rewardbench_file))
    scores = [g.score for g in Judge.load(folder, device="cpu").grade_many(bench.records())]
    right = {}
    for pair, a, b in zip(bench.items, scores[0::2], scores[1::2]):
        right.setdefault(pair.group, []).append(a > b)
    assert result["accuracy_by_group"] == pytest.approx({s: fmean(v) for s, v in right.items()})
    assert result["score_by_section"] == pytest.approx(section_scores({s: fmean(v) for s, v in right.items()}))
