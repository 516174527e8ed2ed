"""A backbone's weights where ``from_pretrained`` reads them: an embedded GGUF backbone is
de-quantised once into the cache (``datamodules.backbones.cache_dir``) as safetensors."""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from datamodules.backbones import backbone_files, cache_dir

log = logging.getLogger(__name__)


def resolve_backbone(name: str) -> str:
    """A path or hub id that ``from_pretrained`` accepts for the backbone ``name`` (a GGUF
    backbone is converted first, about 30 s, once)."""
    path, gguf_file = backbone_files(name)
    if gguf_file is None:
        return path
    target = cache_dir() / name
    convert_gguf(Path(path), gguf_file, target)
    return str(target)


def convert_gguf(source: Path, gguf_file: str, target: Path) -> None:
    """De-quantise a GGUF checkpoint into a plain safetensors folder (about 30 s, once)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to safetensors in %s (once)", gguf_file, target)
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=gguf_file)
    quantised = AutoModelForCausalLM.from_pretrained(source, gguf_file=gguf_file)
    # A model loaded from GGUF refuses save_pretrained; a fresh one built from its config with
    # the de-quantised weights does not.
    config = quantised.config
    config.quantization_config = None
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(quantised.state_dict())
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    try:  # atomic: a concurrent process either sees nothing or the whole folder
        staging.rename(target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not (target / "config.json").exists():
            raise
