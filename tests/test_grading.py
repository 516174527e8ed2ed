"""``phudge grade``: outputs in input order, rejects with line numbers, resumption after a kill."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from phudge_lightning.grade.command import grade_file, main
from phudge_lightning.jsonl_resume import REJECTS_SUFFIX, count_lines, trim_partial_line
from phudge_lightning.judge import Grade

REPO = Path(__file__).resolve().parents[1]


class FakeJudge:
    """Scores a response by its length; ``fail_on`` raises in that call, like a kill mid-run."""

    def __init__(self, fail_on: int | None = None):
        self.calls, self.fail_on, self.graded = 0, fail_on, []

    def grade_many(self, records, batch_size=None):
        self.calls += 1
        if self.calls == self.fail_on:
            raise KeyboardInterrupt("killed")
        self.graded += [r.response for r in records]
        return [Grade(score=float(len(r.response) % 5 + 1)) for r in records]


def input_lines(n: int = 30) -> tuple[list[str], list[int], list[int]]:
    """Lines of a JSON-lines input, the ids of the good ones and the line numbers of the bad ones."""
    lines, good, bad = [], [], []
    for i in range(n):
        row = {"id": i, "instruction": f"Question {i}?", "response": "x" * (1 + i % 7), "meta": {"k": [i]}}
        if i % 4 == 1:
            row["rubric"] = {"criteria": "Correct?", **{f"score{k}_description": f"level {k}" for k in range(1, 6)}}
        if i % 9 == 4:
            del row["response"]  # bad: a missing field
        if i % 11 == 6:
            row["rubric"] = 42  # bad: a wrong type
        text = json.dumps(row)
        if i == 13:
            text = text[:-5]  # bad: malformed JSON
        lines.append(text)
        if i % 9 == 4 or i % 11 == 6 or i == 13:
            bad.append(len(lines))  # its 1-based line number
        else:
            good.append(i)
        if i == 20:
            lines.append("")  # a blank line: skipped, no outcome
    return lines, good, bad


def write_input(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def outcomes(output: Path) -> tuple[list[dict], list[dict]]:
    rejects = Path(str(output) + REJECTS_SUFFIX)
    out = [json.loads(x) for x in output.read_text().splitlines()]
    rej = [json.loads(x) for x in rejects.read_text().splitlines()] if rejects.exists() else []
    return out, rej


def check_exactly_once(output: Path, good: list[int], bad: list[int]) -> None:
    out, rej = outcomes(output)
    assert [row["id"] for row in out] == good  # every good line once, in input order
    assert [r["line"] for r in rej] == bad  # every bad line once, in input order


def test_outputs_in_order_with_rejects(tmp_path):
    lines, good, bad = input_lines()
    source = write_input(tmp_path / "in.jsonl", lines)
    output = tmp_path / "out" / "graded.jsonl"
    reported = []
    summary = grade_file(FakeJudge(), source, output, batch_size=4, report=reported.append)
    check_exactly_once(output, good, bad)
    assert (summary.graded, summary.rejected, summary.already_done) == (len(good), len(bad), 0)
    out, rej = outcomes(output)
    first = json.loads(lines[0])
    assert out[0] == {**first, "score": float(len(first["response"]) % 5 + 1)}  # the input line plus score
    assert out[1]["rubric"]["criteria"] == "Correct?" and out[0]["meta"] == {"k": [0]}
    by_line = {r["line"]: r for r in rej}
    assert by_line[5]["field"] == "response" and "line 5, field 'response'" in by_line[5]["error"]
    assert by_line[7]["field"] == "rubric" and by_line[14]["field"] is None and "malformed JSON" in by_line[14]["error"]
    assert by_line[5]["text"] == lines[4]
    assert reported == [f"{source}, {r['error']}" for r in rej]  # the console names the file too


def test_input_score_is_replaced_not_validated(tmp_path):
    source = write_input(tmp_path / "in.jsonl", [json.dumps({"instruction": "I", "response": "abc", "score": 9})])
    grade_file(FakeJudge(), source, tmp_path / "out.jsonl")
    out, rej = outcomes(tmp_path / "out.jsonl")
    assert rej == [] and out == [{"instruction": "I", "response": "abc", "score": 4.0}]
    assert not Path(str(tmp_path / "out.jsonl") + REJECTS_SUFFIX).exists()  # a clean input leaves no rejects file


def test_probabilities_and_missing_scores_are_written(tmp_path):
    class Judge:
        def grade_many(self, records, batch_size=None):
            return [Grade(score=None, feedback="no result"), Grade(score=2.0, probabilities=[0.1, 0.8, 0.1, 0.0, 0.0])]

    source = write_input(tmp_path / "in.jsonl", [json.dumps({"instruction": "I", "response": r}) for r in "ab"])
    grade_file(Judge(), source, tmp_path / "out.jsonl", batch_size=2)
    out, _ = outcomes(tmp_path / "out.jsonl")
    assert out[0] == {"instruction": "I", "response": "a", "score": None, "feedback": "no result"}
    assert out[1]["probabilities"] == [0.1, 0.8, 0.1, 0.0, 0.0]


def test_empty_answers_are_graded_and_wrong_types_rejected_naming_the_whole_field(tmp_path):
    rows = [{"id": 1, "instruction": "I", "response": ""}, {"id": 2, "instruction": "I", "response": " \n"},
            {"id": 3, "instruction": "I", "response": 42}, {"id": 4, "instruction": "I", "response": None},
            {"id": 5, "instruction": "I", "response": ["a", "list"]}, {"id": 6, "instruction": "I"},
            {"id": 7, "instruction": "  ", "response": "r"}]
    source = write_input(tmp_path / "in.jsonl", [json.dumps(r) for r in rows])
    judge, reported = FakeJudge(), []
    summary = grade_file(judge, source, tmp_path / "out.jsonl", batch_size=3, report=reported.append)
    out, rej = outcomes(tmp_path / "out.jsonl")
    assert (summary.graded, summary.rejected) == (2, 5) and judge.graded == ["", " \n"]
    assert [(row["id"], row["response"], row["score"]) for row in out] == [(1, "", 1.0), (2, " \n", 3.0)]
    assert [r["error"] for r in rej] == [
        "line 3, field 'response': must be text, got a number (42)",
        "line 4, field 'response': must be text, got null",
        "line 5, field 'response': must be text, got a list (['a', 'list'])",
        "line 6, field 'response': is missing",
        "line 7, field 'instruction': is blank ('  ')"]
    assert reported[0] == f"{source}, line 3, field 'response': must be text, got a number (42)"


def test_a_file_with_a_byte_order_mark_is_graded(tmp_path):
    """A JSON-lines file saved by a Windows editor or a spreadsheet starts with a UTF-8 BOM."""
    rows = [{"id": 1, "instruction": "I", "response": "abc"}, {"id": 2, "instruction": "I", "response": "Olá"}]
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\xef\xbb\xbf" + "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode())
    summary = grade_file(FakeJudge(), source, tmp_path / "out.jsonl")
    out, rej = outcomes(tmp_path / "out.jsonl")
    assert rej == [] and summary.graded == 2 and [(row["id"], row["response"]) for row in out] == [(1, "abc"), (2, "Olá")]
    assert count_lines(source) == 2  # the progress bar's total


def test_trim_partial_line(tmp_path):
    path = tmp_path / "f.jsonl"
    assert trim_partial_line(path) == 0
    path.write_bytes(b'{"a": 1}\n{"a": 2}\n{"a"')
    assert trim_partial_line(path) == 2 and path.read_bytes() == b'{"a": 1}\n{"a": 2}\n'
    path.write_bytes(b'{"half')
    assert trim_partial_line(path) == 0 and path.read_bytes() == b""


@pytest.mark.parametrize("fail_on", [2, 3, 5])
def test_resume_after_a_crash_between_rejects_and_grades(tmp_path, fail_on):
    """A crash inside grading leaves the batch's rejects written and its grades not: the batch's
    good lines are graded on resumption and its bad lines are not rejected twice."""
    lines, good, bad = input_lines()
    source, output = write_input(tmp_path / "in.jsonl", lines), tmp_path / "out.jsonl"
    with pytest.raises(KeyboardInterrupt):
        grade_file(FakeJudge(fail_on=fail_on), source, output, batch_size=4)
    # and a kill in the middle of a write: half lines at the end of both files
    with output.open("ab") as f:
        f.write(b'{"id": 99, "instruction": "half')
    with Path(str(output) + REJECTS_SUFFIX).open("ab") as f:
        f.write(b'{"line": 1')
    judge = FakeJudge()
    summary = grade_file(judge, source, output, batch_size=4)
    check_exactly_once(output, good, bad)
    assert summary.already_done > 0 and summary.graded == len(judge.graded)
    assert grade_file(FakeJudge(fail_on=1), source, output).graded == 0  # nothing left: the judge is not called


def test_output_of_another_input_is_refused(tmp_path):
    source = write_input(tmp_path / "in.jsonl", [json.dumps({"instruction": "I", "response": "a"})])
    output = tmp_path / "out.jsonl"
    output.write_text('{"score": 1}\n{"score": 2}\n')
    with pytest.raises(RuntimeError, match="another input"):
        grade_file(FakeJudge(), source, output)


# -- the command, with a tiny real judge ---------------------------------------------------------
@pytest.fixture(scope="module")
def judge_dir(tiny_llama_dir, tmp_path_factory):
    from phudge_lightning.formats import save
    from phudge_lightning.model.module import JudgeModule

    module = JudgeModule(backbone=str(tiny_llama_dir), head="classification", lora={"r": 2, "alpha": 4, "dropout": 0.0})
    return save(module, tmp_path_factory.mktemp("judge"), "judge")


def test_grade_command(tmp_path, judge_dir):
    lines, good, bad = input_lines(12)
    source, output = write_input(tmp_path / "in.jsonl", lines), tmp_path / "out.jsonl"
    assert main(["--checkpoint", str(judge_dir), "--input", str(source), "--output", str(output),
                 "--batch-size", "3", "--device", "cpu"]) == 0
    check_exactly_once(output, good, bad)
    out, _ = outcomes(output)
    assert all(1 <= row["score"] <= 5 and len(row["probabilities"]) == 5 for row in out)
    # run again: all done, nothing added; --overwrite starts afresh
    assert main(["--checkpoint", str(judge_dir), "--input", str(source), "--output", str(output), "--device", "cpu"]) == 0
    check_exactly_once(output, good, bad)
    assert main(["--checkpoint", str(judge_dir), "--input", str(source), "--output", str(output), "--device", "cpu",
                 "--overwrite"]) == 0
    check_exactly_once(output, good, bad)


def count_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


@pytest.mark.slow
def test_grade_survives_kill_9(tmp_path, judge_dir):
    """Kill ``phudge grade`` with SIGKILL at random points, run it again each time: every line
    is graded (or rejected) exactly once, in input order."""
    lines, good, bad = input_lines(150)
    source, output = write_input(tmp_path / "in.jsonl", lines), tmp_path / "out.jsonl"
    command = [sys.executable, "-m", "phudge_lightning.cli", "grade", "--checkpoint", str(judge_dir), "--input",
               str(source), "--output", str(output), "--batch-size", "2", "--device", "cpu"]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    rng, kills = random.Random(4), 0
    with (tmp_path / "stderr.txt").open("wb") as log:
        for _ in range(3):
            process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=log)
            before, deadline = count_lines(output), time.monotonic() + 180
            while process.poll() is None and count_lines(output) <= before and time.monotonic() < deadline:
                time.sleep(0.01)  # wait for the first batch of this run, so the kill lands mid-run
            time.sleep(rng.uniform(0.0, 0.4))
            if process.poll() is not None:
                break
            process.send_signal(signal.SIGKILL)
            process.wait()
            kills += 1
        final = subprocess.run(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=log, timeout=300)
    assert final.returncode == 0, (tmp_path / "stderr.txt").read_text()[-2000:]
    assert kills >= 2
    check_exactly_once(output, good, bad)
