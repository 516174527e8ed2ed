"""Ensembles: several judges exported as one folder grade each response by the mean of their scores."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from conftest import judge_module, phudge_grade_scores
from phudge_lightning.export.command import main as export_main
from phudge_lightning.formats import CheckpointError, check_paths, load, save
from phudge_lightning.formats.registry import checkpoint_kind
from phudge_lightning.judge import Judge

RECORDS = [
    {"instruction": "Name a prime number.", "response": "7"},
    {"instruction": "Name a prime number.", "response": "Eight, which is prime."},
    {"instruction": "Say hello.", "response": ""},
]


def grades(path_or_module):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        judge = Judge.load(path_or_module, device="cpu") if not isinstance(path_or_module, torch.nn.Module) \
            else Judge(path_or_module, device="cpu")
        return judge.grade_many(RECORDS)


def test_an_exported_ensemble_grades_by_the_mean_of_its_members(tiny_llama_dir, tmp_path):
    members = [save(judge_module(tiny_llama_dir, "classification", seed), tmp_path / f"judge-{seed}", "judge") for seed in (0, 1, 2)]
    alone = [grades(path) for path in members]
    assert alone[0][0].score != pytest.approx(alone[1][0].score, abs=1e-3)  # the members differ

    assert export_main(["--checkpoint", *map(str, members), "--output", str(tmp_path / "ensemble")]) == 0
    folder = tmp_path / "ensemble"
    assert json.loads((folder / "ensemble.json").read_text()) == {"members": ["member-1", "member-2", "member-3"]}
    assert not (folder / "member-1" / "adapter").exists()  # its LoRA weights are in trained.safetensors
    check_paths([folder])  # what phudge evaluate checks before loading

    together = grades(folder)
    for i, grade in enumerate(together):
        assert grade.score == pytest.approx(sum(g[i].score for g in alone) / 3, abs=1e-5)
        mean = [sum(g[i].probabilities[k] for g in alone) / 3 for k in range(5)]
        assert grade.probabilities == pytest.approx(mean, abs=1e-5)
        assert grade.confidence == pytest.approx(max(grade.probabilities))

    assert phudge_grade_scores(folder, RECORDS, tmp_path) == pytest.approx([g.score for g in together], abs=1e-5)

    # exported again (the ensemble given as one checkpoint) it is the same ensemble
    assert export_main(["--checkpoint", str(folder), "--output", str(tmp_path / "again")]) == 0
    assert [g.score for g in grades(tmp_path / "again")] == pytest.approx([g.score for g in together], abs=1e-6)


def test_an_ensemble_of_regression_judges_has_no_probabilities(tiny_llama_dir, tmp_path):
    members = [judge_module(tiny_llama_dir, "regression", seed) for seed in (3, 4)]
    from phudge_lightning.model.ensemble import JudgeEnsemble

    together = grades(JudgeEnsemble(members))
    alone = [grades(judge_module(tiny_llama_dir, "regression", seed)) for seed in (3, 4)]
    assert [g.score for g in together] == pytest.approx([(a.score + b.score) / 2 for a, b in zip(*alone)], abs=1e-5)
    assert all(g.probabilities is None for g in together)


def test_members_that_read_another_prompt_or_scale_are_refused(tiny_llama_dir, tmp_path, capsys):
    one = save(judge_module(tiny_llama_dir, "classification", 0), tmp_path / "one", "judge")
    ten = save(judge_module(tiny_llama_dir, "classification", 1, score_range=[1, 10]), tmp_path / "ten", "judge")
    assert export_main(["--checkpoint", str(one), str(ten), "--output", str(tmp_path / "bad")]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # (transformers' loading bars come first)
    assert last.startswith("phudge export: ") and "member 2 has score_range=[1, 10]" in last
    assert not (tmp_path / "bad" / "ensemble.json").exists()

    with pytest.raises(SystemExit) as exit_:
        export_main(["--checkpoint", str(one), str(one), "--output", str(tmp_path / "hf"), "--format", "hf"])
    assert exit_.value.code == 2
    assert "ensemble is exported with --format judge" in capsys.readouterr().err


def test_commands_that_take_one_judge_name_a_member_and_a_broken_ensemble_is_named(tiny_llama_dir, tmp_path):
    members = [save(judge_module(tiny_llama_dir, "classification", seed), tmp_path / f"m{seed}", "judge") for seed in (0, 1)]
    assert export_main(["--checkpoint", *map(str, members), "--output", str(tmp_path / "ens")]) == 0
    with pytest.raises(CheckpointError, match=r"an ensemble folder \(ensemble.json\), not one judge's checkpoint"):
        checkpoint_kind(tmp_path / "ens")  # e.g. phudge validate --ckpt_path: one judge's weights
    import shutil

    shutil.rmtree(tmp_path / "ens" / "member-2")
    with pytest.raises(CheckpointError, match="missing members: .*member-2"):
        load(tmp_path / "ens")
    (tmp_path / "ens" / "ensemble.json").write_text('{"members": "member-1"}')
    with pytest.raises(CheckpointError, match="must list at least 2"):
        load(tmp_path / "ens")


@pytest.mark.slow
def test_phudge_serve_grades_with_an_ensemble_folder(tiny_llama_dir, tmp_path):
    from test_serving import Server, request

    members = [save(judge_module(tiny_llama_dir, "classification", seed), tmp_path / f"m{seed}", "judge") for seed in (5, 6)]
    assert export_main(["--checkpoint", *map(str, members), "--output", str(tmp_path / "ens")]) == 0
    expected = grades(tmp_path / "ens")[0]
    served = Server(tmp_path / "ens", tmp_path / "server.log")
    try:
        served.wait_ready()
        assert served.health()["head"] == "classification"
        status, body = request(served.url + "/grade", RECORDS[0])
        assert status == 200, body
        assert body["score"] == pytest.approx(expected.score, abs=1e-4)
        assert body["probabilities"] == pytest.approx(expected.probabilities, abs=1e-4)
    finally:
        served.stop()
