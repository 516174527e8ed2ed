"""``phudge export --checkpoint A B ...``: several judges as one ensemble folder, and reading it back.

The folder holds one ``phudge export`` folder per member (``member-1``, ``member-2``, ...) and
``ensemble.json``, written last, naming them: ``{"members": ["member-1", "member-2", ...]}``.
Members are written without the peft ``adapter/`` copy of their LoRA weights (those are in
``trained.safetensors``; peft cannot read an ensemble anyway), so a member is 2 MB for MiniLM.
``phudge_lightning.checkpoints.load_module`` reads the folder as a ``JudgeEnsemble``.
"""

from __future__ import annotations

import json
from pathlib import Path

from phudge_lightning.io import atomic_write_json

ENSEMBLE = "ensemble.json"


def is_ensemble(path: str | Path) -> bool:
    return Path(path).is_dir() and (Path(path) / ENSEMBLE).is_file()


def member_paths(path: str | Path) -> list[Path]:
    """The members' folders named by ``path/ensemble.json``, each checked to exist."""
    from phudge_lightning.checkpoints import CheckpointError

    path = Path(path)
    try:
        names = json.loads((path / ENSEMBLE).read_text(encoding="utf-8-sig"))["members"]
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path / ENSEMBLE} is not an ensemble's list ({{\"members\": [...]}}): {e}") from e
    if not isinstance(names, list) or len(names) < 2 or not all(isinstance(n, str) for n in names):
        raise CheckpointError(f"{path / ENSEMBLE}: 'members' must list at least 2 folder names, got {names!r}")
    paths = [path / name for name in names]
    missing = [str(p) for p in paths if not p.is_dir()]
    if missing:
        raise CheckpointError(f"{path} is an ensemble missing members: {', '.join(missing)}")
    return paths


def export_ensemble(modules: list, output: str | Path) -> Path:
    """Write ``modules`` (trained ``JudgeModule``s that read the same prompt) as one ensemble folder."""
    from phudge_lightning.export.folder import export
    from phudge_lightning.model.ensemble import JudgeEnsemble

    JudgeEnsemble(modules)  # the members must share prompt and scale: refuse before writing
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    names = [f"member-{i}" for i in range(1, len(modules) + 1)]
    for name, module in zip(names, modules):
        export(module, output / name, adapter=False)
    atomic_write_json(output / ENSEMBLE, {"members": names})
    return output
