"""``phudge evaluate``: the length baseline, both pair conventions, a real (tiny) judge, the shared files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scipy import stats

from phudge_lightning.benchmarks import load_benchmark
from phudge_lightning.evaluate.run import main

BENCHMARKS = Path(__file__).resolve().parents[2] / "shared/data/benchmarks"
RUBRIC = "[Is it helpful?]\n" + "\n".join(f"Score {i}: level {i}." for i in range(1, 6))


def prompt(instruction: str, response: str) -> str:
    return (f"###Task Description:\nGrade it.\n\n###The instruction to evaluate:\n{instruction}\n\n"
            f"###Response to evaluate:\n{response}\n\n###Reference Answer (Score 5):\nA reference.\n\n"
            f"###Score Rubrics:\n{RUBRIC}\n\n###Feedback: ")


def run(tmp_path, *args) -> dict:
    output = tmp_path / "metrics.json"
    assert main([*args, "--output", str(output)]) == 0
    return json.loads(output.read_text())


@pytest.fixture
def vicuna_like(tmp_path):
    rows = [{"idx": i, "instruction": prompt(f"Q{i}", "word " * (1 + (i * 7) % 11)),
             "gpt4_score": [1 + i % 5, 1 + (i * 3) % 5, 3]} for i in range(12)]
    path = tmp_path / "vicuna.json"
    path.write_text(json.dumps(rows))
    return path, rows


def test_length_baseline_absolute(tmp_path, vicuna_like):
    path, rows = vicuna_like
    result = run(tmp_path, "--baseline", "length", "--benchmark", "vicuna", "--data", str(path))
    lengths = [len(("word " * (1 + (i * 7) % 11)).strip()) for i in range(12)]
    means = [sum(r["gpt4_score"]) / 3 for r in rows]
    # Characters against scores on 1-5: only the scale-free figures, and the output says so.
    assert {"n", "pearson", "spearman", "kendall"} <= set(result) and not {"r2", "mae", "mse"} & set(result)
    assert "scale-free" in result["scale"]
    assert result["n"] == 12 and result["invalid"] == 0
    assert result["pearson"] == pytest.approx(stats.pearsonr(lengths, means)[0], abs=1e-9)
    assert result["spearman"] == pytest.approx(stats.spearmanr(lengths, means)[0], abs=1e-6)
    assert result["judge"] == "baseline: length" and result["benchmark"] == "vicuna"


def test_length_baseline_strict_pairs(tmp_path):
    pairs = [("a long chosen answer", "short"), ("tie!!", "same!"), ("short", "a long rejected answer"), ("longer", "long")]
    rows = [{"chosen_instruction": prompt("Q", a), "rejected_instruction": prompt("Q", b)} for a, b in pairs]
    path = tmp_path / "hhh.json"
    path.write_text(json.dumps(rows))
    result = run(tmp_path, "--baseline", "length", "--benchmark", "hhh", "--data", str(path))
    # right: 1 and 4; pair 2 is a predicted tie (equal lengths): wrong under the strict convention
    assert (result["n"], result["accuracy"], result["predicted_ties"], result["ties"]) == (4, 0.5, 1, 0)
    assert "strict" in result["convention"] and "accuracy_with_ties" not in result


def test_pairs_are_scored_per_subset_and_written_per_item(tmp_path):
    pairs = [("helpful", "a long chosen answer", "short"), ("helpful", "short", "a long rejected answer"),
             ("honest", "longer", "long"), ("harmless", "no", "a long harmful answer")]
    rows = [{"source": src, "chosen_instruction": prompt("Q", a), "rejected_instruction": prompt("Q", b)}
            for src, a, b in pairs]
    path = tmp_path / "hhh.json"
    path.write_text(json.dumps(rows))
    predictions = tmp_path / "pairs.jsonl"
    result = run(tmp_path, "--baseline", "length", "--benchmark", "hhh", "--data", str(path),
                 "--predictions", str(predictions))
    assert result["accuracy"] == 0.5
    assert result["accuracy_by_group"] == {"harmless": 0.0, "helpful": 0.5, "honest": 1.0}
    written = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert [(w["row"], w["source"], w["label"]) for w in written] == [(i, src, "A") for i, (src, _, _) in enumerate(pairs, 1)]
    assert [(w["score_a"], w["score_b"]) for w in written] == [(float(len(a)), float(len(b))) for _, a, b in pairs]


def test_absolute_predictions_hold_score_and_label(tmp_path, vicuna_like):
    path, rows = vicuna_like
    predictions = tmp_path / "rows.jsonl"
    result = run(tmp_path, "--baseline", "length", "--benchmark", "vicuna", "--data", str(path), "--predictions", str(predictions))
    written = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert len(written) == result["n"] == 12 and "accuracy_by_group" not in result
    assert [w["label"] for w in written] == pytest.approx([sum(r["gpt4_score"]) / 3 for r in rows])
    assert stats.pearsonr([w["score"] for w in written], [w["label"] for w in written])[0] == pytest.approx(result["pearson"])


def test_ensemble_scores_are_the_mean_and_missing_stays_missing():
    from phudge_lightning.model.ensemble import mean_scores

    assert mean_scores([[1.0, 2.0, None], [3.0, 5.0, 4.0]]) == [2.0, 3.5, None]


def test_length_baseline_with_tie_labels_and_margin(tmp_path):
    rows = [  # Auto-J: 0 first better, 1 second better, 2 tie
        {"prompt": "P", "response 1": "a" * 10, "response 2": "a" * 5, "label": 0},  # right
        {"prompt": "P", "response 1": "a" * 10, "response 2": "a" * 9, "label": 1},  # wrong
        {"prompt": "P", "response 1": "a" * 10, "response 2": "a" * 9, "label": 2},  # a tie within a margin of 1
        {"prompt": "P", "response 1": "a" * 10, "response 2": "a" * 10, "label": 2},  # a tie at any margin
        {"prompt": "P", "response 1": 7, "response 2": "a", "label": 2},  # invalid
    ]
    path = tmp_path / "autoj.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    exact = run(tmp_path, "--baseline", "length", "--benchmark", "autoj", "--data", str(path))
    assert (exact["n"], exact["accuracy"], exact["ties"], exact["invalid"]) == (2, 0.5, 2, 1)
    assert exact["accuracy_with_ties"] == pytest.approx(2 / 4) and exact["tie_margin"] == 0.0
    margin = run(tmp_path, "--baseline", "length", "--benchmark", "autoj", "--data", str(path), "--tie-margin", "1")
    assert margin["accuracy"] == 0.5  # the strict figure does not move
    # pair 1 (5 apart) still "A", right; pair 2 (1 apart) now a predicted tie, still wrong; pairs 3 and 4 right
    assert margin["accuracy_with_ties"] == pytest.approx(3 / 4) and margin["tie_margin"] == 1.0


def test_judge_on_absolute_and_relative_sets(tmp_path, tiny_llama_dir, vicuna_like):
    from phudge_lightning.formats import save
    from phudge_lightning.judge import Judge
    from phudge_lightning.model.module import JudgeModule

    module = JudgeModule(backbone=str(tiny_llama_dir), head="regression", lora={"r": 2, "alpha": 4, "dropout": 0.0})
    folder = save(module, tmp_path / "judge", "judge")
    path, _ = vicuna_like
    result = run(tmp_path, "--checkpoint", str(folder), "--benchmark", "vicuna", "--data", str(path), "--device", "cpu",
                 "--batch-size", "4")
    assert result["n"] == 12 and result["no_score"] == 0 and -1 <= result["pearson"] <= 1
    judge = Judge.load(folder, device="cpu")
    bench = load_benchmark("vicuna", str(path))
    scores = [g.score for g in judge.grade_many(bench.records())]
    assert result["pearson"] == pytest.approx(stats.pearsonr(scores, [r.score for r in bench.items])[0], abs=1e-4)

    # An ensemble of this judge and another one scores each row by the mean of the two.
    other = save(JudgeModule(backbone=str(tiny_llama_dir), head="regression"), tmp_path / "other", "judge")
    other_scores = [g.score for g in Judge.load(other, device="cpu").grade_many(bench.records())]
    predictions = tmp_path / "ensemble.jsonl"
    both = run(tmp_path, "--checkpoint", str(folder), str(other), "--benchmark", "vicuna", "--data", str(path),
               "--device", "cpu", "--predictions", str(predictions))
    mean = [(a + b) / 2 for a, b in zip(scores, other_scores)]
    assert [json.loads(line)["score"] for line in predictions.read_text().splitlines()] == pytest.approx(mean, abs=1e-4)
    assert both["judge"] == f"{folder} + {other}"

    rows = [{"question_body": f"Q{i}", "answer1_body": "yes " * (i + 1), "answer2_body": "no", "score": [8, 8 - i % 3]}
            for i in range(6)]
    judgelm = tmp_path / "judgelm.jsonl"
    judgelm.write_text("".join(json.dumps(r) + "\n" for r in rows))
    relative = run(tmp_path, "--checkpoint", str(folder), "--benchmark", "judgelm", "--data", str(judgelm),
                   "--device", "cpu", "--rubric-free", "--reference-free")
    assert relative["n"] == 4 and relative["ties"] == 2 and relative["rubric_free"] and relative["reference_free"]
    assert 0 <= relative["accuracy"] <= 1 and relative["n_with_ties"] == 6


def autoj_with_empty_answers(path: Path) -> Path:
    """24 Auto-J pairs: every fifth has an empty or blank second answer (the first is better);
    row 19's second answer is a number and row 22's is missing (2 invalid rows)."""
    rows = []
    for i in range(24):
        empty = i % 5 == 0
        rows.append({"prompt": f"Question {i}?", "response 1": "a fair answer " * (1 + i % 3),
                     "response 2": ("", " ", "\n")[i % 3] if empty else "another answer " * (1 + i % 2),
                     "label": 0 if empty else i % 2})
    rows[18]["response 2"] = 3
    del rows[21]["response 2"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_pairs_with_an_empty_answer_are_counted_and_invalid_rows_name_the_whole_field(tmp_path, capsys):
    """Empty answers are scored (length 0: the baseline gets those pairs right), never invalid;
    each invalid row is one line naming the file, the row and the whole field, however long the
    path (the terminal's width once broke ``field 'response 2'`` in two)."""
    path = autoj_with_empty_answers(tmp_path / ("a-long-folder-name-" * 4) / "autoj_test.jsonl")
    result = run(tmp_path, "--baseline", "length", "--benchmark", "autoj", "--data", str(path))
    assert (result["n"], result["invalid"]) == (22, 2)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("invalid:")]
    assert lines == [f"invalid: {path}, row 19, field 'response 2': must be text, got a number (3)",
                     f"invalid: {path}, row 22, field 'response 2': is missing"]
    predictions = tmp_path / "pairs.jsonl"
    run(tmp_path, "--baseline", "length", "--benchmark", "autoj", "--data", str(path), "--predictions", str(predictions))
    written = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert [w["score_b"] for w in written if w["row"] in (1, 6, 11, 16, 21)] == [0.0, 1.0, 1.0, 0.0, 1.0]


def test_a_judge_grades_the_empty_answers(tmp_path, tiny_llama_dir):
    from phudge_lightning.formats import save
    from phudge_lightning.model.module import JudgeModule

    folder = save(JudgeModule(backbone=str(tiny_llama_dir), head="classification"), tmp_path / "judge", "judge")
    path = autoj_with_empty_answers(tmp_path / "autoj.jsonl")
    predictions = tmp_path / "pairs.jsonl"
    result = run(tmp_path, "--checkpoint", str(folder), "--benchmark", "autoj", "--data", str(path), "--device", "cpu",
                 "--predictions", str(predictions))
    assert (result["n"], result["invalid"], result["no_score"]) == (22, 2, 0)
    written = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert all(1 <= w["score_b"] <= 5 for w in written if w["row"] in (1, 6, 11, 16, 21))


def test_no_valid_rows_or_no_checkpoint_is_an_error(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "P"}\n')
    assert main(["--baseline", "length", "--benchmark", "autoj", "--data", str(path)]) == 1
    path.write_text('{"prompt": "P", "response 1": "a", "response 2": "b", "label": 0}\n')
    assert main(["--checkpoint", str(tmp_path / "absent.ckpt"), "--benchmark", "autoj", "--data", str(path)]) == 2
    assert main(["--checkpoint", str(path), str(tmp_path / "absent.ckpt"), "--benchmark", "autoj", "--data", str(path)]) == 2
    with pytest.raises(SystemExit):  # a judge or the baseline, not both
        main(["--checkpoint", "x", "--baseline", "length", "--benchmark", "autoj", "--data", str(path)])


@pytest.mark.skipif(not (BENCHMARKS / "vicuna_eval.json").exists(), reason="the shared benchmark files are not here")
def test_length_baseline_reproduces_the_published_floor(tmp_path):
    """The README beside the data: length alone reaches Pearson 0.29 on Vicuna, 0.32 on
    MT-Bench, accuracy 0.63 on HHH."""
    vicuna = run(tmp_path, "--baseline", "length", "--benchmark", "vicuna", "--data", str(BENCHMARKS / "vicuna_eval.json"))
    assert round(vicuna["pearson"], 2) == 0.29 and vicuna["n"] == 320 and vicuna["invalid"] == 0
    mt_bench = run(tmp_path, "--baseline", "length", "--benchmark", "mt_bench", "--data", str(BENCHMARKS / "mt_bench_eval.json"))
    assert round(mt_bench["pearson"], 2) == 0.32
    hhh = run(tmp_path, "--baseline", "length", "--benchmark", "hhh", "--data", str(BENCHMARKS / "hhh_alignment_eval.json"))
    assert round(hhh["accuracy"], 2) == 0.63 and hhh["n"] == 221


def hhh_like(path: Path, n: int = 8) -> Path:
    rows = [{"chosen_instruction": prompt(f"Q{i}", "a fine answer " * (1 + i % 3)),
             "rejected_instruction": prompt(f"Q{i}", "no " * (1 + (i * 5) % 4))} for i in range(n)]
    path.write_text(json.dumps(rows))
    return path


def validation_config(tmp_path, backbone) -> Path:
    """A training config whose validation split holds the pairs of two sources."""
    from conftest import write_jsonl

    files = []
    for name, answer in (("bread", "Bread is flour, water and salt."), ("tea", "Tea is leaves steeped in hot water.")):
        rows = [{"chosen": f"\n\nHuman: Tell me about {name} {i}\n\nAssistant: " + (answer if i % 3 else "No."),
                 "rejected": f"\n\nHuman: Tell me about {name} {i}\n\nAssistant: " + ("No." if i % 3 else answer)}
                for i in range(30)]
        files.append(write_jsonl(tmp_path / f"{name}.jsonl", rows))
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"model": {"backbone": str(backbone)},
                                  "data": {"max_length": 64, "sources": [{"data": str(f), "val_fraction": 0.3} for f in files]}}))
    return config


def test_several_benchmarks_and_the_validation_in_one_call(tmp_path, vicuna_like, tiny_bert_dir):
    from phudge_lightning.benchmarks import FILES
    from phudge_lightning.metrics import pair_metrics

    folder = tmp_path / "benchmarks"
    folder.mkdir()
    (folder / FILES["vicuna"]).write_text(vicuna_like[0].read_text())
    hhh_like(folder / FILES["hhh"])
    config = validation_config(tmp_path, tiny_bert_dir)
    results = run(tmp_path, "--baseline", "length", "--benchmark", "vicuna", "hhh", "--data", str(folder),
                  "--validation", str(config))
    by_name = {r["benchmark"]: r for r in results}
    assert list(by_name) == ["vicuna", "hhh", "validation_pairs", "validation_pairs/bread", "validation_pairs/tea"]
    # each figure is the one a call for that benchmark alone gives
    alone = run(tmp_path, "--baseline", "length", "--benchmark", "hhh", "--data", str(folder / FILES["hhh"]))
    assert by_name["hhh"]["accuracy"] == alone["accuracy"] and by_name["hhh"]["n"] == 8
    # the held-out pairs of each source: a slice of the validation pairs, scored as those
    pairs, bread, tea = (by_name[n] for n in ("validation_pairs", "validation_pairs/bread", "validation_pairs/tea"))
    assert bread["n"] + tea["n"] == pairs["n"] > 0
    scores = pairs["scores"]["baseline: length"]
    assert bread["scores"]["baseline: length"] + tea["scores"]["baseline: length"] == scores
    labels = ["A"] * pairs["n"]  # (chosen first)
    assert pairs["accuracy"] == pytest.approx(pair_metrics(labels, scores[0::2], scores[1::2])["accuracy"])

    with pytest.raises(SystemExit):  # a benchmark needs its data
        main(["--baseline", "length", "--benchmark", "vicuna"])
    assert main(["--baseline", "length", "--benchmark", "vicuna", "hhh", "--data", str(vicuna_like[0])]) == 2
    assert main(["--baseline", "length", "--benchmark", "autoj", "--data", str(folder)]) == 2  # no released name


def test_saved_scores_make_the_ensemble_of_the_judges_that_wrote_them(tmp_path, vicuna_like):
    path, rows = vicuna_like
    graded = run(tmp_path, "--baseline", "length", "--benchmark", "vicuna", "--data", str(path))
    lengths = graded["scores"]["baseline: length"]
    other = [float(i % 5) for i in range(12)]
    files = [tmp_path / "a.json", tmp_path / "b.json"]
    files[0].write_text(json.dumps({"benchmark": "vicuna", "scores": {"a": lengths}}))
    files[1].write_text(json.dumps([{"benchmark": "vicuna", "scores": {"b": other}}]))
    both = run(tmp_path, "--scores", *map(str, files), "--benchmark", "vicuna", "--data", str(path))
    means = [sum(r["gpt4_score"]) / 3 for r in rows]
    mean = [(a + b) / 2 for a, b in zip(lengths, other)]
    assert both["pearson"] == pytest.approx(stats.pearsonr(mean, means)[0], abs=1e-9) and both["judge"] == "a + b"

    files[1].write_text(json.dumps({"benchmark": "vicuna", "scores": {"b": other[:5]}}))
    assert main(["--scores", *map(str, files), "--benchmark", "vicuna", "--data", str(path)]) == 2  # not one per item
    assert main(["--scores", str(files[0]), str(files[0]), "--benchmark", "vicuna", "--data", str(path)]) == 2  # twice
