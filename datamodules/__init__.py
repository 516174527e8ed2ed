"""Records, prompts and batches: everything between a data file and a batch of token ids.

The names below are imported on first use, so that reading records (``datamodules.records``)
does not pay for torch, transformers and Lightning, which the data module and the tokenizers need.
"""

from __future__ import annotations

import importlib

_WHERE = {
    "EMBEDDED": "backbones",
    "GradingDataset": "datasets", "to_dataset": "datasets",
    "JudgeDataModule": "judge_datamodule",
    "PromptEncoder": "prompt", "render": "prompt",
    "Record": "records", "RecordError": "records", "validate_record": "records",
    "load_records": "sources",
    "load_tokenizer": "tokenizer",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'datamodules' has no attribute {name!r}")
    return getattr(importlib.import_module(f"datamodules.{_WHERE[name]}"), name)
