"""Records, prompts and batches: everything between a data file and a batch of token ids."""

from datamodules.backbones import EMBEDDED
from datamodules.datasets import GradingDataset, to_dataset
from datamodules.judge_datamodule import JudgeDataModule
from datamodules.prompt import PromptEncoder, render
from datamodules.records import Record, RecordError, validate_record
from datamodules.sources import load_records
from datamodules.tokenizer import load_tokenizer

__all__ = [
    "EMBEDDED", "GradingDataset", "JudgeDataModule", "PromptEncoder", "Record", "RecordError",
    "load_records", "load_tokenizer", "render", "to_dataset", "validate_record",
]
