"""``lightning``: a file from ``phudge fit`` without DeepSpeed (or from Lightning's
``convert_zero_checkpoint_to_fp32_state_dict``): a torch zip archive (``data.pkl``), whatever
its name. ``phudge fit`` writes it; no other command does."""

from __future__ import annotations

import zipfile
from pathlib import Path

import torch

from phudge_lightning.formats.registry import Format, register


@register
class LightningFile(Format):
    name = "lightning"
    looks_like = "a Lightning .ckpt file"

    @classmethod
    def holds(cls, path: Path) -> bool:
        if not path.is_file() or not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("/data.pkl") or name == "data.pkl" for name in archive.namelist())

    @classmethod
    def checkpoint(cls, path: Path) -> dict:
        # Lightning's own files hold only tensors and plain types (phudge fit writes no objects).
        return torch.load(path, map_location="cpu", weights_only=True)
