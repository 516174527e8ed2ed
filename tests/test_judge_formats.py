"""The registry of judge formats on disk: a new format is one registered class, and ``load``,
``save``, ``kind_of`` and the error for a path of no format all follow the registry."""

from __future__ import annotations

import pytest
import torch

from conftest import judge_module
from phudge_lightning.formats import CheckpointError, kind_of, load, registry, save


@pytest.fixture
def torch_save_format(monkeypatch):
    """A format of one's own: a folder holding ``checkpoint.pt`` (Lightning's form, torch.save)."""
    monkeypatch.setattr(registry, "FORMATS", dict(registry.FORMATS))  # registered for this test only

    @registry.register
    class TorchSave(registry.Format):
        name = "torch-save"
        looks_like = "a folder holding checkpoint.pt"

        @classmethod
        def holds(cls, path):
            return (path / "checkpoint.pt").is_file()

        @classmethod
        def checkpoint(cls, path):
            return torch.load(path / "checkpoint.pt", weights_only=True)

        @classmethod
        def write(cls, module, path):
            path.mkdir(parents=True)
            torch.save({"state_dict": module.trained_state_dict(), "hyper_parameters": dict(module.hparams),
                        "prompt_settings": {"max_length": 77}}, path / "checkpoint.pt")
            return path

    return TorchSave


def test_a_new_format_is_one_registered_class(torch_save_format, tiny_llama_dir, tmp_path):
    module = judge_module(tiny_llama_dir, "classification", seed=3)
    folder = save(module, tmp_path / "mine", "torch-save")
    assert kind_of(folder) is torch_save_format
    loaded = load(folder)
    assert torch.equal(loaded.head.proj.weight, module.head.proj.weight) and loaded.prompt_settings["max_length"] == 77
    # its checkpoint is taken where one judge's checkpoint is (--ckpt_path)
    assert registry.checkpoint_kind(folder) is torch_save_format
    with pytest.raises(CheckpointError, match="a folder holding checkpoint.pt"):  # the error lists it
        kind_of(tmp_path)
    with pytest.raises(ValueError, match="writable formats are judge, ensemble, peft, hf, torch-save"):
        save(module, tmp_path / "x", "lightning")


def test_the_shipped_judge_and_several_paths(tiny_llama_dir, tmp_path):
    assert kind_of("default").name in ("judge", "ensemble") and registry.resolve("default").is_dir()
    folders = [save(judge_module(tiny_llama_dir, "regression", seed), tmp_path / f"m{seed}", "judge") for seed in (0, 1)]
    ensemble = load(folders)  # several paths: one ensemble
    assert len(ensemble.members) == 2
    again = save(ensemble, tmp_path / "ens", "ensemble")
    assert kind_of(again).name == "ensemble"
    assert len(load([again, folders[0]]).members) == 3  # an ensemble among them counts as its members
    with pytest.raises(ValueError, match="format 'ensemble'"):
        save(ensemble, tmp_path / "one", "judge")
    with pytest.raises(CheckpointError, match="ensemble folder .*not one judge's checkpoint"):
        registry.checkpoint_kind(again)
