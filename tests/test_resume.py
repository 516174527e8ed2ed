"""Training survives faults: a run killed with kill -9 resumes from ``last.ckpt`` on the same loss
curve, and batches with a NaN or infinite loss are skipped, then stop the run if they persist.

The end-to-end resume test runs ``phudge fit`` three times as subprocesses, at tiny scale (a random
2-layer Llama, 40 rows, 30 steps of batch 4, 9 batches per epoch): an uninterrupted reference,
a run killed with SIGKILL mid-epoch, and its resumption with ``--ckpt_path last.ckpt``. The
resumed losses must equal the reference's step for step: that holds only if the weights, the
AdamW moments, the learning-rate schedule, the step counter and the data order all came back.
"""

from __future__ import annotations

import csv
import math
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
import yaml
from lightning.pytorch.callbacks import Callback

import losses
from datamodules.batching import LengthGroupedBatchSampler

REPO = Path(__file__).resolve().parents[1]
MAX_STEPS = 30
EVERY = 5  # last.ckpt every 5 optimizer steps
PAUSE_AT = 17  # the killed run is paused, then killed, after 17 steps: last.ckpt holds step 15
RESUMED_FROM = PAUSE_AT // EVERY * EVERY
TIMEOUT = 600


class PauseAt(Callback):
    """Before training step ``step + 1``, write ``marker`` and sleep: the test's kill -9 then
    lands at a known point mid-run instead of racing a run that takes a few seconds."""

    def __init__(self, step: int, marker: str):
        self.step, self.marker = step, marker

    def on_train_batch_start(self, trainer, *args) -> None:
        if trainer.global_step == self.step:
            Path(self.marker).write_text(str(trainer.global_step))
            time.sleep(TIMEOUT)


# -- the sampler's resume ------------------------------------------------------------------------
def batches(sampler: LengthGroupedBatchSampler, epoch: int) -> list[list]:
    sampler.set_epoch(epoch)
    return list(sampler)


@pytest.mark.parametrize("replicas", [1, 2])
def test_sampler_resume_skips_the_trained_batches_once(replicas):
    lengths = [(i * 37) % 101 for i in range(50)]
    make = lambda rank: LengthGroupedBatchSampler(lengths, 4, shuffle=True, seed=3, num_replicas=replicas, rank=rank)
    for rank in range(replicas):
        full = {epoch: batches(make(rank), epoch) for epoch in (0, 1, 2)}
        sampler = make(rank)
        assert sampler.resume(1, 5)
        assert batches(sampler, 1) == full[1][5:]
        assert batches(sampler, 2) == full[2]  # once only
        assert batches(sampler, 1) == full[1]
        sampler.resume(1, 5)
        assert batches(sampler, 2) == full[2]  # another epoch: nothing skipped


def test_lightning_sets_the_epoch_of_the_batch_sampler():
    """Lightning calls ``set_epoch`` on ``loader.sampler`` and ``loader.batch_sampler.sampler``:
    the order and the augmentation draws must change with the epoch, and a resume matches it."""
    from lightning.fabric.utilities.data import _set_sampler_epoch
    from torch.utils.data import DataLoader

    sampler = LengthGroupedBatchSampler(list(range(40)), 4, shuffle=True, seed=0)
    keys = type("Keys", (), {"__getitem__": lambda self, key: key, "__len__": lambda self: 40})()
    loader = DataLoader(keys, batch_sampler=sampler, collate_fn=lambda rows: rows)
    _set_sampler_epoch(loader, 3)
    assert sampler.epoch == 3
    assert {epoch for batch in loader for _, epoch in batch} == {3}


@pytest.mark.parametrize("skip", [0, 13, 99])
def test_sampler_resume_at_an_epoch_end_skips_nothing(skip):
    sampler = LengthGroupedBatchSampler(list(range(50)), 4, shuffle=True, seed=0)
    assert len(sampler) == 13
    assert not sampler.resume(0, skip)
    assert len(batches(sampler, 0)) == 13


def test_resume_is_set_before_the_loader_is_iterated():
    """Lightning builds the train loader before restoring a checkpoint (to count the steps),
    and some strategies restore the datamodule after that: the position must reach the sampler
    either way, because the sampler reads it only when the epoch's iteration starts."""
    from datamodules.judge_datamodule import JudgeDataModule

    dm = JudgeDataModule()  # (reads nothing before setup)
    assert dm.state_dict() == {}  # no trainer, no position
    dm.load_state_dict({"train_position": [2, 3]})
    dm._train_sampler = LengthGroupedBatchSampler(list(range(40)), 4, shuffle=True, seed=0)
    dm._apply_resume()
    full = batches(LengthGroupedBatchSampler(list(range(40)), 4, shuffle=True, seed=0), 2)
    assert batches(dm._train_sampler, 2) == full[3:]


@pytest.mark.parametrize("name", ["cpu-minilm.yaml", "cpu-smollm2.yaml"])
def test_cpu_recipes_write_last_ckpt_every_10_steps_or_fewer(name):
    config = yaml.safe_load((REPO / "configs" / name).read_text())
    found = [c["init_args"] for c in config["trainer"]["callbacks"]
             if c["class_path"].endswith("ModelCheckpoint") and c["init_args"].get("save_last")]
    assert any(0 < args.get("every_n_train_steps", 0) <= 10 for args in found), found


# -- kill -9 and resume --------------------------------------------------------------------------
def write_config(root: Path, tiny_llama_dir: Path, records: Path, *, pause: bool = False) -> Path:
    callbacks = [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                  "init_args": {"dirpath": str(root / "ckpt"), "save_last": True, "save_top_k": 0,
                                "every_n_train_steps": EVERY}}]
    if pause:
        callbacks.append({"class_path": "test_resume.PauseAt",
                          "init_args": {"step": PAUSE_AT, "marker": str(root / "paused")}})
    config = {
        "seed_everything": 42,
        "trainer": {
            "accelerator": "cpu", "devices": 1, "max_steps": MAX_STEPS, "max_epochs": 100,
            "log_every_n_steps": 1, "num_sanity_val_steps": 0, "enable_progress_bar": False,
            "enable_model_summary": False, "default_root_dir": str(root),
            "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger",
                       "init_args": {"save_dir": str(root), "name": "csv"}},
            "callbacks": callbacks,
        },
        # Dropout 0 everywhere: the losses are then a function of the weights and the batches alone.
        "model": {"backbone": str(tiny_llama_dir), "head": "regression", "head_params": {"dropout": 0.0},
                  "lora": {"r": 4, "alpha": 8, "dropout": 0.0}, "lr": 1.0e-3},
        "data": {"data": str(records), "val_fraction": 0.1, "batch_size": 4},
    }
    path = root / "fit.yaml"
    root.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path


def start_fit(root: Path, config: Path, *extra: str) -> subprocess.Popen:
    # One thread each: identical arithmetic in every run, and kind to a shared machine.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), str(REPO)]),
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    log = open(root / "log.txt", "w")
    return subprocess.Popen([sys.executable, "-m", "phudge_lightning.cli", "fit", "--config", str(config), *extra],
                            cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)


def finish(process: subprocess.Popen, root: Path) -> None:
    try:
        rc = process.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    assert rc == 0, (root / "log.txt").read_text()[-4000:]


def step_losses(root: Path) -> dict[int, float]:
    (metrics,) = root.glob("csv/version_*/metrics.csv")
    with metrics.open() as f:
        return {int(row["step"]): float(row["train/loss_step"]) for row in csv.DictReader(f) if row["train/loss_step"]}


def checkpoint_step(path: Path) -> int:
    import torch

    return torch.load(path, map_location="cpu", weights_only=False)["global_step"]


@pytest.mark.slow
def test_fit_killed_with_sigkill_resumes_on_the_same_loss_curve(tmp_path, tiny_llama_dir, small_records_file):
    reference, killed, resumed = tmp_path / "reference", tmp_path / "killed", tmp_path / "resumed"
    runs = [start_fit(reference, write_config(reference, tiny_llama_dir, small_records_file)),
            start_fit(killed, write_config(killed, tiny_llama_dir, small_records_file, pause=True))]
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (killed / "paused").exists():
            assert runs[1].poll() is None, (killed / "log.txt").read_text()[-4000:]
            assert time.monotonic() < deadline, "the run to kill never reached its pause"
            time.sleep(0.2)
        os.kill(runs[1].pid, signal.SIGKILL)
        assert runs[1].wait(timeout=60) == -signal.SIGKILL
        last = killed / "ckpt" / "last.ckpt"
        assert checkpoint_step(last) == RESUMED_FROM  # mid-epoch: epoch 1, after 6 of its 9 batches

        runs.append(start_fit(resumed, write_config(resumed, tiny_llama_dir, small_records_file),
                              "--ckpt_path", str(last)))
        finish(runs[0], reference)
        finish(runs[2], resumed)
    finally:
        for run in runs:
            if run.poll() is None:
                run.kill()

    expected, got = step_losses(reference), step_losses(resumed)
    assert sorted(expected) == list(range(MAX_STEPS))
    assert sorted(got) == list(range(RESUMED_FROM, MAX_STEPS))  # picks up at the checkpoint's step
    for step in got:
        assert got[step] == pytest.approx(expected[step], rel=1e-4, abs=1e-5), f"step {step}"
    assert checkpoint_step(resumed / "ckpt" / "last.ckpt") == MAX_STEPS


# -- non-finite losses ---------------------------------------------------------------------------
def fractional(score: torch.Tensor) -> torch.Tensor:
    return score != score.round()


@losses.register_loss("test_nan_on_fractional_scores", target="scalar")
def nan_on_fractional_scores(prediction: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
    """MSE, but NaN for a batch holding a non-integer score (a stand-in for a bad row)."""
    loss = (prediction - score).pow(2).mean()
    return loss * math.nan if fractional(score).any() else loss


@losses.register_loss("test_inf_on_fractional_scores", target="scalar")
def inf_on_fractional_scores(prediction: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
    loss = (prediction - score).pow(2).mean()
    return loss + math.inf if fractional(score).any() else loss


@losses.register_loss("test_always_nan", target="scalar")
def always_nan(prediction: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
    return prediction.sum() * math.nan


def fit_one_epoch(tiny_llama_dir, records, loss: str, max_nonfinite_steps: int):
    import lightning as L

    from datamodules import JudgeDataModule
    from phudge_lightning.model.module import JudgeModule

    module = JudgeModule(backbone=str(tiny_llama_dir), head="regression", loss=loss, max_nonfinite_steps=max_nonfinite_steps,
                         lora={"r": 2, "alpha": 4, "dropout": 0.0}, lr=1e-3)
    dm = JudgeDataModule(data=str(records), backbone=str(tiny_llama_dir), batch_size=4,
                                      val_fraction=0.1, max_length=256)
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        num_sanity_val_steps=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            trainer.fit(module, dm)
            error = None
        except RuntimeError as e:
            error = e
    found = [re.fullmatch(r"step (\d+): non-finite loss \((\w+)\) on rows \[([\d, ]*)\]; batch skipped", str(w.message))
             for w in caught]
    return trainer, dm, [(int(m[1]), m[2], [int(i) for i in m[3].split(", ")]) for m in found if m], error


@pytest.mark.parametrize("loss, shown", [("test_nan_on_fractional_scores", "nan"), ("test_inf_on_fractional_scores", "inf")])
def test_non_finite_batches_are_skipped_with_a_warning_naming_step_and_rows(tiny_llama_dir, small_records_file, loss, shown):
    trainer, dm, skipped, error = fit_one_epoch(tiny_llama_dir, small_records_file, loss, max_nonfinite_steps=100)
    assert error is None
    # The epoch's batches, in the order the trainer drew them: the bad ones are those warned of.
    sampler = trainer.train_dataloader.batch_sampler
    sampler.set_epoch(0)
    scores = dm.sets["train"].table["score"]
    expected, good, batches = [], 0, list(sampler)
    for step, batch in enumerate(batches):
        rows = [index for index, _ in batch]
        if any(scores[i] != round(scores[i]) for i in rows):
            expected.append((step, shown, rows))
        else:
            good += 1
    assert expected and good  # the test data holds both kinds of batch
    assert skipped == expected
    # Lightning counts a skipped batch as a step (global_step, the schedule), but no weight moves:
    # AdamW's own step count is that of the finite batches.
    assert trainer.global_step == len(batches)
    assert {int(state["step"]) for state in trainer.optimizers[0].state.values()} == {good}


def test_non_finite_losses_in_a_row_stop_training_with_a_clear_error(tiny_llama_dir, small_records_file):
    trainer, _, skipped, error = fit_one_epoch(tiny_llama_dir, small_records_file, "test_always_nan", max_nonfinite_steps=3)
    assert isinstance(error, RuntimeError)
    assert re.match(r"3 batches in a row had a non-finite loss \(last at step 2, rows \[[\d, ]+\]\)", str(error))
    assert [step for step, _, _ in skipped] == [0, 1, 2]
    assert not trainer.optimizers[0].state  # not one update
