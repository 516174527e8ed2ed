"""One reader for every kind of judge checkpoint, told apart by what the path holds.

    module = load_module("runs/paper/.../best-epoch=0-step=9.ckpt")   # a file or a DeepSpeed folder
    module = load_module("judges/phi3")                                 # a folder from phudge export

``KINDS`` lists the kinds, tried in order; adding one is one ``Kind`` entry: its name, what it
looks like (for the error message), a test of the path, and a reader returning the checkpoint
as Lightning writes it (``state_dict`` with the trained weights at least, ``hyper_parameters``,
``prompt_settings``, and whatever else the kind holds: loops, callbacks ...).

- ``lightning``: a file from ``phudge fit`` without DeepSpeed (or from Lightning's
  ``convert_zero_checkpoint_to_fp32_state_dict``): a torch zip archive (``data.pkl``).
- ``deepspeed``: a folder from ``phudge fit`` under ``DeepSpeedStrategy`` (ZeRO 1 or 2): ``latest``
  names a tag folder (or the path is that folder) holding ``mp_rank_00_model_states.pt``, a plain
  torch file with the module's weights under ``module`` (bf16 under bf16-mixed: the weights the
  forward used; ZeRO's fp32 master copies, in the optimizer shards, round to them) and
  Lightning's state beside them. Read with torch alone: grading needs no deepspeed.
- ``export``: a folder from ``phudge export`` (``judge.json``, ``trained.safetensors``).

An ensemble folder (``ensemble.json`` and one export per member) is not a kind: it is several
checkpoints. ``load_module`` reads it as a ``JudgeEnsemble`` (for ``Judge``); ``kind_of`` refuses
it with a message naming a member, for the commands that take one judge.

Anything else raises ``CheckpointError``, whose message is one line naming what was expected;
the commands print it and exit 2. ``JudgeCheckpointIO`` lets a Lightning ``Trainer`` read every
kind for ``validate``/``test``/``predict`` ``--ckpt_path``.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from lightning.fabric.plugins import CheckpointIO, TorchCheckpointIO

from phudge_lightning.export.ensemble import ENSEMBLE, is_ensemble, member_paths
from phudge_lightning.export.folder import CONFIG as EXPORT_CONFIG, WEIGHTS as EXPORT_WEIGHTS

DEEPSPEED_STATES = "mp_rank_00_model_states.pt"
# What DeepSpeed's engine writes into its model-states file; every other entry is Lightning's
# checkpoint (DeepSpeedStrategy hands it over as the engine's client_state).
DEEPSPEED_ENTRIES = {
    "module", "buffer_names", "optimizer", "param_shapes", "frozen_param_shapes", "shared_params",
    "frozen_param_fragments", "lr_scheduler", "data_sampler", "random_ltd", "sparse_tensor_module_names",
    "skipped_steps", "global_steps", "global_samples", "dp_world_size", "mp_world_size",
    "checkpoint_parallel_dimensions", "ds_config", "ds_version",
}


class CheckpointError(ValueError):
    """A path that is no judge checkpoint, or one that cannot be read; the message is one line."""


@dataclass(frozen=True)
class Kind:
    name: str
    looks_like: str  # for the error message: what a path of this kind holds
    holds: Callable[[Path], bool]
    read: Callable[[Path], dict[str, Any]]


# -- lightning ------------------------------------------------------------------------------------
def _is_torch_archive(path: Path) -> bool:
    if not path.is_file() or not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/data.pkl") or name == "data.pkl" for name in archive.namelist())


def _read_lightning(path: Path) -> dict[str, Any]:
    # Lightning's own files hold only tensors and plain types (phudge fit writes no objects).
    return torch.load(path, map_location="cpu", weights_only=True)


# -- deepspeed ------------------------------------------------------------------------------------
def deepspeed_states_file(path: Path) -> Path | None:
    """The model-states file of a DeepSpeed checkpoint folder (or of its tag folder), if any."""
    if not path.is_dir():
        return None
    latest = path / "latest"
    folder = path / latest.read_text().strip() if latest.is_file() else path
    states = folder / DEEPSPEED_STATES
    return states if states.is_file() else None


def _is_deepspeed(path: Path) -> bool:
    return path.is_dir() and ((path / "latest").is_file() or any(path.glob("*model_states.pt")))


def _read_deepspeed(path: Path) -> dict[str, Any]:
    states_file = deepspeed_states_file(path)
    if states_file is None:
        raise CheckpointError(
            f"{path} is a DeepSpeed checkpoint without {DEEPSPEED_STATES} (ZeRO-3 partitions its weights): convert it "
            "first with lightning.pytorch.utilities.deepspeed.convert_zero_checkpoint_to_fp32_state_dict(DIR, "
            "'judge.ckpt') and use judge.ckpt")
    states = torch.load(states_file, map_location="cpu", weights_only=True, mmap=True)
    if states.get("mp_world_size", 1) != 1:
        raise CheckpointError(f"{states_file}: a model-parallel DeepSpeed checkpoint ({states['mp_world_size']} "
                              "ranks) is not supported")
    if not states.get("module"):
        raise CheckpointError(f"{states_file} holds no module weights (ZeRO-3?): convert the folder with "
                              "convert_zero_checkpoint_to_fp32_state_dict first")
    if "hyper_parameters" not in states:
        raise CheckpointError(f"{states_file} holds no hyper-parameters: was it written by phudge fit?")
    # The optimizer's parameters are what training changed (LoRA and head); with
    # exclude_frozen_parameters off the file holds the frozen backbone too, which the
    # module rebuilds from the backbone's name, so it is left out here.
    trained = {name for group in states["param_shapes"] for name in group} | set(states.get("buffer_names") or ())
    checkpoint = {k: v for k, v in states.items() if k not in DEEPSPEED_ENTRIES}
    checkpoint["state_dict"] = {k: v for k, v in states["module"].items() if k in trained}
    return checkpoint


def saved_weight_names(path: str | Path) -> set[str] | None:
    """The names of the weights a DeepSpeed checkpoint folder holds (to check them after DeepSpeed
    loaded it); None where the folder has no ``mp_rank_00`` model states (ZeRO-3) or is no folder."""
    states_file = deepspeed_states_file(Path(path))
    if states_file is None:
        return None
    return set(torch.load(states_file, map_location="cpu", weights_only=True, mmap=True).get("module") or ())


# -- export ---------------------------------------------------------------------------------------
def _is_export(path: Path) -> bool:
    return path.is_dir() and (path / EXPORT_CONFIG).is_file()


def _read_export(path: Path) -> dict[str, Any]:
    import lightning
    from safetensors.torch import load_file

    if not (path / EXPORT_WEIGHTS).is_file():
        raise CheckpointError(f"{path} is an export cut short: it has {EXPORT_CONFIG} but no {EXPORT_WEIGHTS}")
    config = json.loads((path / EXPORT_CONFIG).read_text(encoding="utf-8-sig"))
    return {"state_dict": load_file(str(path / EXPORT_WEIGHTS), device="cpu"), "hyper_parameters": config["hparams"],
            "prompt_settings": config.get("prompt", {}), "lora_scale": config.get("lora_scale", 1.0),
            "pytorch-lightning_version": lightning.__version__}


# -- the registry ---------------------------------------------------------------------------------
KINDS: list[Kind] = [
    Kind("export", f"a folder from phudge export ({EXPORT_CONFIG})", _is_export, _read_export),
    Kind("deepspeed", f"a DeepSpeed checkpoint folder (latest, */{DEEPSPEED_STATES})", _is_deepspeed, _read_deepspeed),
    Kind("lightning", "a Lightning .ckpt file", _is_torch_archive, _read_lightning),
]


# A transformers folder from ``phudge export --format hf`` (or a hub id of one) is not a Lightning
# checkpoint: ``Judge.load`` reads it with plain transformers (``export/hf.py``), not as a module.
TRANSFORMERS = "a transformers folder from phudge export --format hf (or its hub id)"


def is_transformers_judge(path: str | Path) -> bool:
    from phudge_lightning.export.hf import is_hf_judge, is_hub_id

    return is_hf_judge(path) or is_hub_id(str(path))


def expected(with_transformers: bool = True) -> str:
    *rest, last = [k.looks_like for k in KINDS] + ([TRANSFORMERS] if with_transformers else [])
    return f"{', '.join(rest)} or {last}"


def kind_of(path: str | Path) -> Kind:
    """The kind of checkpoint at ``path``; ``CheckpointError`` (one line) when it is none of ``KINDS``."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}: expected {expected()}")
    for kind in KINDS:
        if kind.holds(path):
            return kind
    if is_ensemble(path):
        raise CheckpointError(f"{path} is an ensemble of judges ({ENSEMBLE}): phudge grade, evaluate, rank, serve and "
                              f"Judge.load read it; this command takes one judge, e.g. {member_paths(path)[0]}")
    if (path / EXPORT_WEIGHTS).is_file():  # judge.json is written last
        raise CheckpointError(f"{path} is an export cut short ({EXPORT_WEIGHTS} but no {EXPORT_CONFIG}): export it again")
    what = "a folder" if path.is_dir() else "a file"
    raise CheckpointError(f"{path} is {what} but not a judge checkpoint: expected {expected()}")


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint at ``path`` in Lightning's form, whatever its kind."""
    path = Path(path)
    kind = kind_of(path)
    try:
        return kind.read(path)
    except CheckpointError:
        raise
    except Exception as e:  # a truncated or foreign file: say which, in one line
        raise CheckpointError(f"{path} looks like {kind.looks_like} but cannot be read: "
                              f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e


def check_paths(paths) -> None:
    """Every path is a checkpoint of some kind (before loading any: an ensemble should not fail halfway)."""
    from phudge_lightning.judge import DEFAULT, default_judge_path

    for path in paths:
        path = default_judge_path() if str(path) == DEFAULT else path
        if is_ensemble(path):
            check_paths(member_paths(path))
        elif not is_transformers_judge(path):
            kind_of(path)


def load_module(path: str | Path, map_location: str = "cpu"):
    """A ``JudgeModule`` with the weights of the checkpoint at ``path``, in eval mode; for an
    ensemble folder (``export/ensemble.py``), a ``JudgeEnsemble`` of its members."""
    from phudge_lightning.model.module import JudgeModule

    if is_ensemble(path):
        from phudge_lightning.model.ensemble import JudgeEnsemble

        return JudgeEnsemble([load_module(member, map_location) for member in member_paths(path)]).eval()

    checkpoint = read_checkpoint(path)
    hparams = {k: v for k, v in checkpoint["hyper_parameters"].items() if k != "_instantiator"}
    module = JudgeModule(**hparams)
    module.on_load_checkpoint(checkpoint)  # prompt settings; checks and completes the trained weights
    module.load_state_dict(checkpoint["state_dict"])
    return module.to(map_location).eval()


# -- Lightning's Trainer --------------------------------------------------------------------------
class JudgeCheckpointIO(CheckpointIO):
    """``Trainer.validate/test/predict(ckpt_path=...)`` from any kind of checkpoint, under any
    strategy but DeepSpeed's (which reads its own folders, and only those): a Lightning file goes
    to ``inner`` unchanged, the other kinds are read into Lightning's form (weights and
    hyper-parameters; no optimizer state, so they cannot resume a fit). Saving, removing and
    teardown are ``inner``'s, so checkpoints are written as before.

        Trainer(plugins=[JudgeCheckpointIO()]).validate(module, data, ckpt_path="best.ckpt/")
    """

    def __init__(self, inner: CheckpointIO | None = None):
        self.inner = inner or TorchCheckpointIO()

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        return self.inner.save_checkpoint(checkpoint, path, storage_options=storage_options)

    def load_checkpoint(self, path, map_location=None, weights_only=None):
        if kind_of(path).name == "lightning":
            return self.inner.load_checkpoint(path, weights_only=weights_only)
        return read_checkpoint(path)

    def remove_checkpoint(self, path):
        return self.inner.remove_checkpoint(path)

    def teardown(self):
        return self.inner.teardown()
