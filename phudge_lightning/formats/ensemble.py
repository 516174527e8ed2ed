"""``ensemble``: several judges as one folder (``phudge export --checkpoint A B ...``), read as a
``JudgeEnsemble`` (the rule is in ``model/ensemble.py``).

The folder holds one judge folder per member (``member-1``, ``member-2``, ...) and
``ensemble.json``, written last, naming them: ``{"members": ["member-1", "member-2", ...]}``.
Members are written without the peft ``adapter/`` copy of their LoRA weights (those are in
``trained.safetensors``; peft cannot read an ensemble anyway), so a member is 2 MB for MiniLM.
"""

from __future__ import annotations

import json
from pathlib import Path

from phudge_lightning.formats.judge_folder import JudgeFolder
from phudge_lightning.formats.registry import CheckpointError, Format, kind_of, register
from phudge_lightning.io import atomic_write_json
from phudge_lightning.model.ensemble import JudgeEnsemble

ENSEMBLE = "ensemble.json"


def member_paths(path: str | Path) -> list[Path]:
    """The members' folders named by ``path/ensemble.json``, each checked to exist."""
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


@register
class EnsembleFolder(Format):
    name = "ensemble"
    looks_like = f"an ensemble folder ({ENSEMBLE})"

    @classmethod
    def holds(cls, path: Path) -> bool:
        return path.is_dir() and (path / ENSEMBLE).is_file()

    @classmethod
    def check(cls, path: Path) -> None:
        for member in member_paths(path):
            kind_of(member)

    @classmethod
    def read(cls, path: Path) -> JudgeEnsemble:
        return JudgeEnsemble([kind_of(member).read(member) for member in member_paths(path)])

    @classmethod
    def write(cls, judge, path: Path) -> Path:
        """Write ``judge`` (a ``JudgeEnsemble``, or a list of ``JudgeModule``s that read the same
        prompt) as one folder: the members' judge folders, then ``ensemble.json``."""
        ensemble = judge if isinstance(judge, JudgeEnsemble) else JudgeEnsemble(list(judge))  # refuse before writing
        path.mkdir(parents=True, exist_ok=True)
        names = [f"member-{i}" for i in range(1, len(ensemble.members) + 1)]
        for name, member in zip(names, ensemble.members):
            JudgeFolder.write(member, path / name, adapter=False)
        atomic_write_json(path / ENSEMBLE, {"members": names})
        return path
