"""Every command reads every kind of checkpoint: Lightning files, DeepSpeed folders, exports.

The DeepSpeed folders are real: ``../shared/fixtures/deepspeed-zero2-tiny-phi3`` holds what
``phudge fit --config train.yaml`` wrote on a GPU (ZeRO-2, bf16-mixed, LoRA 128) for a tiny
random Phi-3: a regression run, the same with ``exclude_frozen_parameters``, and a
classification-EMD run. The folder is read-only, so each test works on a copy; its runs name
the backbone ``tiny-phi3`` relative to the folder, so the tests run from the copy.

"The module they came from" is rebuilt here without the reader: ``JudgeModule(**hparams)``
loaded with the raw ``module`` weights of the DeepSpeed file (and those equal ZeRO's fp32
master copies rounded to bf16).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

from phudge_lightning.formats import FORMATS, CheckpointError, kind_of, load, read_checkpoint
from phudge_lightning.model.deepspeed_states import DEEPSPEED_STATES, deepspeed_states_file, saved_weight_names

FIXTURE = Path(__file__).resolve().parents[2] / "shared/fixtures/deepspeed-zero2-tiny-phi3"
BENCHMARKS = Path(__file__).resolve().parents[2] / "shared/data/benchmarks"
RUNS = ("regression", "regression-exclude-frozen", "classification-emd")
CKPT = "best-epoch=0-step=9.ckpt"

pytestmark = pytest.mark.skipif(not FIXTURE.is_dir(), reason=f"no fixture at {FIXTURE}")


@pytest.fixture(scope="module")
def fixture_copy(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("ds") / "fixture"
    shutil.copytree(FIXTURE, target)
    for path in [target, *target.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)  # the copy is ours to write into
    return target


@pytest.fixture
def in_fixture(fixture_copy, monkeypatch) -> Path:
    monkeypatch.chdir(fixture_copy)  # the runs' backbone is the relative path tiny-phi3
    monkeypatch.setattr(sys, "argv", sys.argv[:1])  # (LightningCLI warns when it sees pytest's arguments)
    return fixture_copy


def run_dir(root: Path, run: str) -> Path:
    return next((root / run).glob("*/version_0"))


def ckpt(root: Path, run: str) -> Path:
    return run_dir(root, run) / "checkpoints" / CKPT


def reference_module(root: Path, run: str):
    """The module the run trained, rebuilt from the raw DeepSpeed file, without the reader."""
    from phudge_lightning.model.module import JudgeModule

    states = torch.load(ckpt(root, run) / "checkpoint" / DEEPSPEED_STATES, map_location="cpu", weights_only=True)
    module = JudgeModule(**{k: v for k, v in states["hyper_parameters"].items() if k != "_instantiator"})
    result = module.load_state_dict(states["module"], strict=False)
    assert not result.unexpected_keys
    assert not set(module.trained_state_dict()) & set(result.missing_keys)
    module.prompt_settings = states["prompt_settings"]
    return module.eval()


def records(n: int = 6) -> list[dict]:
    words = "the steak should rest for five minutes so that the juice stays in the meat".split()
    return [{"id": i, "instruction": f"How long should steak {i} rest?", "response": " ".join(words[: 2 + 2 * i]),
             "rubric": "Is it correct?" if i % 2 else None, "reference_answer": "Five minutes." if i % 3 else None}
            for i in range(n)]


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# -- telling the kinds apart ---------------------------------------------------------------------
def test_each_kind_is_told_by_what_it_holds(in_fixture, tmp_path):
    folder = ckpt(in_fixture, "regression")
    assert kind_of(folder).name == "deepspeed"
    assert kind_of(folder / "checkpoint").name == "deepspeed"  # the tag folder itself
    assert deepspeed_states_file(folder) == folder / "checkpoint" / DEEPSPEED_STATES
    torch.save({"state_dict": {}}, tmp_path / "named-anyhow.bin")
    assert kind_of(tmp_path / "named-anyhow.bin").name == "lightning"  # a torch archive, whatever its name
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "judge.json").write_text("{}")
    (tmp_path / "export" / "trained.safetensors").write_bytes(b"")
    assert kind_of(tmp_path / "export").name == "judge"
    assert list(FORMATS) == ["judge", "deepspeed", "lightning", "ensemble", "peft", "hf"]


@pytest.mark.parametrize("what", ["absent", "text file", "hf folder", "export cut short"])
def test_a_path_of_no_kind_is_one_line_naming_what_was_expected(in_fixture, tmp_path, what):
    path = {"absent": tmp_path / "nothing.ckpt", "text file": tmp_path / "notes.ckpt",
            "hf folder": in_fixture / "tiny-phi3", "export cut short": tmp_path / "cut"}[what]
    if what == "text file":
        path.write_text("not a checkpoint")
    if what == "export cut short":
        path.mkdir()
        (path / "trained.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError) as error:
        kind_of(path)
    message = str(error.value)
    assert "\n" not in message and str(path) in message
    if what != "export cut short":
        assert "Lightning .ckpt file" in message and "DeepSpeed checkpoint folder" in message and "phudge export" in message


def test_every_command_refuses_a_wrong_path_in_one_line_with_exit_2(in_fixture, tmp_path, capsys):
    from phudge_lightning.cli import main

    wrong = str(in_fixture / "tiny-phi3")  # a Hugging Face folder: not (yet) a judge checkpoint
    source = write_jsonl(tmp_path / "in.jsonl", records(2))
    vicuna = str(BENCHMARKS / "vicuna_eval.json")
    commands = [
        ["grade", "--checkpoint", wrong, "--input", str(source), "--output", str(tmp_path / "out.jsonl")],
        ["evaluate", "--checkpoint", wrong, "--benchmark", "vicuna", "--data", vicuna, "--limit", "2"],
        ["export", "--checkpoint", wrong, "--output", str(tmp_path / "export")],
        ["serve", "--checkpoint", wrong],
        ["validate", "--config", str(run_dir(in_fixture, "regression") / "config.yaml"), "--trainer.accelerator", "cpu",
         "--trainer.strategy", "auto", "--trainer.precision", "32-true", "--trainer.logger", "false",
         "--ckpt_path", wrong],
    ]
    for command in commands:
        if command[0] == "evaluate" and not BENCHMARKS.is_dir():
            continue
        capsys.readouterr()
        assert main(command) == 2, command[0]
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith(f"phudge {command[0]}: {wrong} is a folder but not a judge checkpoint: expected ")
        assert not any("Traceback" in line for line in err)
    assert not (tmp_path / "export").exists()


# -- the weights -----------------------------------------------------------------------------------
@pytest.mark.parametrize("run", RUNS)
def test_the_reader_takes_the_trained_weights_and_the_hyper_parameters(in_fixture, run):
    checkpoint = read_checkpoint(ckpt(in_fixture, run))
    raw = torch.load(ckpt(in_fixture, run) / "checkpoint" / DEEPSPEED_STATES, map_location="cpu", weights_only=True)
    trained = {name for group in raw["param_shapes"] for name in group}
    assert set(checkpoint["state_dict"]) == trained and any("lora_B" in k for k in trained) and "head.proj.weight" in trained
    for name, value in checkpoint["state_dict"].items():
        assert torch.equal(value, raw["module"][name])
    assert checkpoint["hyper_parameters"]["lora"]["r"] == 128
    assert checkpoint["hyper_parameters"]["head"] == ("classification" if "classification" in run else "regression")
    assert checkpoint["prompt_settings"]["max_length"] == raw["prompt_settings"]["max_length"]
    assert checkpoint["global_step"] == 9 and "loops" in checkpoint
    assert not {"module", "ds_config", "param_shapes"} & set(checkpoint)  # DeepSpeed's own entries stay behind
    # with exclude_frozen_parameters the folder holds only what training changed
    assert (set(raw["module"]) == trained) == (run == "regression-exclude-frozen")


@pytest.mark.parametrize("run", ["regression-exclude-frozen", "classification-emd"])
def test_the_weights_are_zeros_fp32_master_copies_rounded_to_bf16(in_fixture, tmp_path, run):
    pytest.importorskip("deepspeed")
    from lightning.pytorch.utilities.deepspeed import convert_zero_checkpoint_to_fp32_state_dict

    converted = convert_zero_checkpoint_to_fp32_state_dict(str(ckpt(in_fixture, run)), str(tmp_path / "fp32.ckpt"))
    masters = converted["state_dict"]
    ours = read_checkpoint(ckpt(in_fixture, run))["state_dict"]
    assert set(ours) <= set(masters)
    moved = 0
    for name, value in ours.items():
        assert torch.equal(masters[name].to(torch.bfloat16), value), name
        moved += int(not torch.equal(masters[name], value.float()))
    assert moved  # the masters are finer than bf16: they are a different copy, and they agree


def test_a_deepspeed_load_checks_the_trained_weights(in_fixture):
    names = saved_weight_names(ckpt(in_fixture, "regression-exclude-frozen"))
    module = reference_module(in_fixture, "regression-exclude-frozen")
    assert names == set(module.trained_state_dict())  # only what training changed
    module.check_trained_weights(names, "folder")
    with pytest.raises(KeyError, match="lacks 1 trained weights"):
        module.check_trained_weights(names - {"head.proj.weight"}, "folder")


def test_under_deepspeed_loading_is_not_strict_and_the_hook_checks_the_folder(in_fixture, tmp_path):
    """Resuming ``train.yaml`` (exclude_frozen_parameters) from ``last.ckpt``: DeepSpeed's engine
    loads the folder with ``load_module_strict=module.strict_loading``, which must be False as
    the frozen weights are not in it; ``on_load_checkpoint`` then gets Lightning's state without
    a ``state_dict`` and checks the folder held every trained weight."""
    from types import SimpleNamespace

    from lightning.pytorch.strategies import DeepSpeedStrategy

    pytest.importorskip("deepspeed")
    module = reference_module(in_fixture, "regression-exclude-frozen")
    assert module.strict_loading  # no trainer: strict
    folder = ckpt(in_fixture, "regression-exclude-frozen")
    trainer = SimpleNamespace(strategy=DeepSpeedStrategy(stage=2), ckpt_path=str(folder), datamodule=None,
                              state=SimpleNamespace(fn="fit"))
    module._trainer = trainer
    assert not module.strict_loading
    client_state = {k: v for k, v in read_checkpoint(folder).items() if k != "state_dict"}
    module.on_load_checkpoint(client_state)  # every trained weight is there
    states = torch.load(folder / "checkpoint" / DEEPSPEED_STATES, map_location="cpu", weights_only=True)
    del states["module"]["head.proj.weight"]  # a folder that lacks one
    (tmp_path / "cut" / "checkpoint").mkdir(parents=True)
    (tmp_path / "cut" / "latest").write_text("checkpoint")
    torch.save(states, tmp_path / "cut" / "checkpoint" / DEEPSPEED_STATES)
    trainer.ckpt_path = str(tmp_path / "cut")
    with pytest.raises(KeyError, match="lacks 1 trained weights"):
        module.on_load_checkpoint(client_state)
    module.strict_loading = True  # the user's word wins
    assert module.strict_loading
    module._trainer = None


# -- every command, each of the three checkpoints ---------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("run", RUNS)
def test_grade_evaluate_export_give_the_scores_of_the_module_they_came_from(in_fixture, tmp_path, run):
    from phudge_lightning.cli import main
    from phudge_lightning.judge import Judge
    from phudge_lightning.model.module import JudgeModule

    folder = ckpt(in_fixture, run)
    reference = Judge(reference_module(in_fixture, run), device="cpu")
    rows = records()
    expected = reference.grade_many(rows)
    assert len({round(g.score, 4) for g in expected}) > 2  # distinct scores, so a mix-up would show
    fresh = JudgeModule(backbone="tiny-phi3", head=reference.module.hparams.head, lora=reference.module.hparams.lora)
    assert not torch.equal(fresh.head.proj.weight, reference.module.head.proj.weight)

    def scores(path: Path) -> list[float]:
        return [json.loads(line)["score"] for line in path.read_text().splitlines()]

    source = write_jsonl(tmp_path / "in.jsonl", rows)
    assert main(["grade", "--checkpoint", str(folder), "--input", str(source), "--output", str(tmp_path / "ds.jsonl")]) == 0
    assert scores(tmp_path / "ds.jsonl") == pytest.approx([g.score for g in expected], abs=1e-5)
    if expected[0].probabilities:
        graded = json.loads((tmp_path / "ds.jsonl").read_text().splitlines()[0])
        assert graded["probabilities"] == pytest.approx(expected[0].probabilities, abs=1e-5)

    assert main(["export", "--checkpoint", str(folder), "--output", str(tmp_path / "export")]) == 0
    assert main(["grade", "--checkpoint", str(tmp_path / "export"), "--input", str(source),
                 "--output", str(tmp_path / "export.jsonl")]) == 0
    assert scores(tmp_path / "export.jsonl") == pytest.approx([g.score for g in expected], abs=1e-5)

    for path in (folder, tmp_path / "export"):  # the Python API, both folders
        assert [g.score for g in Judge.load(path, device="cpu").grade_many(rows)] == pytest.approx(
            [g.score for g in expected], abs=1e-5)
    module = load(folder)
    assert torch.equal(module.head.proj.weight, reference.module.head.proj.weight)

    if BENCHMARKS.is_dir():
        vicuna = BENCHMARKS / "vicuna_eval.json"
        assert main(["evaluate", "--checkpoint", str(folder), "--benchmark", "vicuna", "--data", str(vicuna), "--limit", "6",
                     "--output", str(tmp_path / "m.json"), "--predictions", str(tmp_path / "p.jsonl")]) == 0
        from phudge_lightning.benchmarks import load_benchmark

        bench = load_benchmark("vicuna", str(vicuna), limit=6)
        want = [g.score for g in reference.grade_many(bench.records())]
        assert scores(tmp_path / "p.jsonl") == pytest.approx(want, abs=1e-5)
        assert json.loads((tmp_path / "m.json").read_text())["n"] == 6


# -- Lightning's --ckpt_path ------------------------------------------------------------------------
def cpu_args(root: Path, run: str) -> list[str]:
    return ["--config", str(run_dir(root, run) / "config.yaml"), "--trainer.accelerator", "cpu",
            "--trainer.strategy", "auto", "--trainer.precision", "32-true", "--trainer.logger", "false",
            "--trainer.enable_progress_bar", "false", "--data.num_workers", "0"]


def logged_val_loss(root: Path, run: str) -> float:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(next(run_dir(root, run).glob("events.*"))))
    events.Reload()
    return events.Scalars("val/loss")[-1].value


@pytest.mark.slow
def test_validate_and_predict_read_a_deepspeed_folder_under_a_cpu_strategy(in_fixture, tmp_path):
    from phudge_lightning.cli import lightning_cli

    run = "regression-exclude-frozen"
    folder = str(ckpt(in_fixture, run))
    cli = lightning_cli(["validate", *cpu_args(in_fixture, run), "--trainer.default_root_dir", str(tmp_path),
                         "--ckpt_path", folder])
    # the same weights on the GPU (bf16) logged this validation loss at the end of the run
    assert float(cli.trainer.callback_metrics["val/loss"]) == pytest.approx(logged_val_loss(in_fixture, run), rel=0.01)
    assert torch.equal(cli.model.head.proj.weight.to(torch.bfloat16),
                       read_checkpoint(folder)["state_dict"]["head.proj.weight"])

    source = write_jsonl(tmp_path / "in.jsonl", records(5))
    cli = lightning_cli(["predict", *cpu_args(in_fixture, run), "--ckpt_path", folder, "--data.predict_data", str(source),
                         "--predict_writer.output_dir", str(tmp_path / "predictions")])
    trained = read_checkpoint(folder)["state_dict"]
    for name in ("head.proj.weight", next(k for k in trained if "lora_B" in k)):  # the run's weights, not a fresh init
        assert torch.equal(cli.model.state_dict()[name].to(torch.bfloat16), trained[name]), name
    predicted = [json.loads(line)["score"] for line in (tmp_path / "predictions" / "predictions.jsonl").read_text().splitlines()]
    from phudge_lightning.judge import Judge

    # (the Judge merges LoRA into the weights and batches by length: rounding differs in the 4th digit)
    expected = Judge(reference_module(in_fixture, run), device="cpu").grade_many(records(5))
    assert predicted == pytest.approx([g.score for g in expected], abs=1e-3)


def test_fit_cannot_resume_from_a_deepspeed_folder_under_a_cpu_strategy(in_fixture, tmp_path, capsys):
    from phudge_lightning.cli import main

    folder = str(ckpt(in_fixture, "regression"))
    assert main(["fit", *cpu_args(in_fixture, "regression"), "--trainer.default_root_dir", str(tmp_path),
                 "--ckpt_path", folder]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"phudge fit: fit --ckpt_path {folder}: resuming needs a Lightning .ckpt file")


def test_train_yaml_leaves_frozen_weights_out():
    import yaml

    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "train.yaml").read_text())
    assert config["trainer"]["strategy"]["init_args"]["exclude_frozen_parameters"] is True
