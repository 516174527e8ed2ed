"""``phudge export --push-to-hub REPO_ID``: upload an exported folder with ``huggingface_hub``.

The token is ``--token``, ``$HF_TOKEN`` or the one ``hf auth login`` stored; without one nothing
is sent. ``dry_run`` lists what would be sent and touches no network.
"""

from __future__ import annotations

import os
from pathlib import Path


class PushError(RuntimeError):
    """The folder cannot be pushed; the message says why."""


def files_to_send(folder: str | Path) -> list[tuple[str, int]]:
    """(path relative to ``folder``, size in bytes) of every file ``upload_folder`` would send."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PushError(f"{folder} is not a folder")
    return [(p.relative_to(folder).as_posix(), p.stat().st_size) for p in sorted(folder.rglob("*"))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)]


def hub_token(token: str | None = None) -> str | None:
    if token or os.environ.get("HF_TOKEN"):
        return token or os.environ["HF_TOKEN"]
    from huggingface_hub import get_token

    return get_token()


def push(folder: str | Path, repo_id: str, *, token: str | None = None, private: bool = False,
         dry_run: bool = False) -> list[tuple[str, int]]:
    """Create ``repo_id`` (a model repository) if needed and upload ``folder`` to it in one
    commit; return the files sent (or, with ``dry_run``, that would be)."""
    files = files_to_send(folder)
    if dry_run:
        return files
    token = hub_token(token)
    if not token:
        raise PushError("no hub token: set HF_TOKEN or run `hf auth login` (--dry-run lists what would be sent)")
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model",
                      commit_message="Upload a PHUDGE judge exported by phudge export --format hf",
                      ignore_patterns=[".*", "**/.*"])
    return files
