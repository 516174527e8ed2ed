"""The agreement of a validation with a test set across judges, from phudge evaluate --output files."""

from __future__ import annotations

import json

import pytest
from scipy.stats import pearsonr

from phudge_lightning.evaluate.agreement import main


def output(path, judge, val, hhh):
    path.write_text(json.dumps([{"benchmark": "validation_pairs", "kind": "relative", "judge": judge, "accuracy": val},
                                {"benchmark": "hhh", "kind": "relative", "judge": judge, "accuracy": hhh},
                                {"benchmark": "vicuna", "kind": "absolute", "judge": judge, "pearson": 0.1}]))
    return str(path)


def test_prints_each_judge_and_the_correlation(tmp_path, capsys):
    figures = [(0.50, 0.60), (0.55, 0.58), (0.60, 0.70), (0.65, 0.66)]
    files = [output(tmp_path / f"{i}.json", f"judge-{i}", v, h) for i, (v, h) in enumerate(figures)]
    assert main(files) == 0
    out = capsys.readouterr().out
    expected = pearsonr([v for v, _ in figures], [h for _, h in figures])[0]
    assert f"4 judges: validation_pairs against hhh: pearson {expected:.3f}" in out
    assert out.index("judge-3") < out.index("judge-0")  # best validation first
    assert main([*files, "--validation", "vicuna"]) == 0  # a scored benchmark: its Pearson


def test_refuses_a_file_without_the_benchmark(tmp_path, capsys):
    files = [output(tmp_path / f"{i}.json", f"j{i}", 0.5 + i / 10, 0.6) for i in range(3)]
    assert main([*files, "--test", "mt_bench"]) == 2
    assert "no mt_bench in it" in capsys.readouterr().err
