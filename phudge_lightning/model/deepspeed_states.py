"""Where a DeepSpeed checkpoint folder keeps a module's weights: read with torch alone (grading
needs no deepspeed). ``phudge_lightning.formats.deepspeed`` reads such a folder as a judge;
``JudgeModule.on_load_checkpoint`` checks, after DeepSpeed's engine has loaded one, that the
trained weights were in it."""

from __future__ import annotations

from pathlib import Path

import torch

DEEPSPEED_STATES = "mp_rank_00_model_states.pt"


def deepspeed_states_file(path: str | Path) -> Path | None:
    """The model-states file of a DeepSpeed checkpoint folder (or of its tag folder), if any."""
    path = Path(path)
    if not path.is_dir():
        return None
    latest = path / "latest"
    folder = path / latest.read_text().strip() if latest.is_file() else path
    states = folder / DEEPSPEED_STATES
    return states if states.is_file() else None


def read_states(states_file: Path) -> dict:
    """The model-states file's contents, memory-mapped (the frozen backbone may be in it)."""
    return torch.load(states_file, map_location="cpu", weights_only=True, mmap=True)


def saved_weight_names(path: str | Path) -> set[str] | None:
    """The names of the weights a DeepSpeed checkpoint folder holds (to check them after DeepSpeed
    loaded it); None where the folder has no ``mp_rank_00`` model states (ZeRO-3) or is no folder."""
    states_file = deepspeed_states_file(path)
    if states_file is None:
        return None
    return set(read_states(states_file).get("module") or ())
