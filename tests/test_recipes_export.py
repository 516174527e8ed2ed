"""Every shipped recipe trains a judge that ``phudge export --format hf`` and ``--format peft``
write: each config, as its header says to run it, built on a tiny backbone of its kind, one
training step taken (so a folded bias has its direction and has moved), exported both ways,
loaded back (transformers alone; peft on the base model) and graded alike."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest
import torch

from heads.folded import FoldedBias
from phudge_lightning.formats import peft
from phudge_lightning.formats import hf
from phudge_lightning.judge import Judge
from phudge_lightning.model.module import JudgeModule

sys.path.insert(0, str(Path(__file__).parent))
from test_configs import ALL, ParseOnly, _id, parse, stack  # noqa: E402

from datamodules import JudgeDataModule  # noqa: E402
from datamodules.prompt import PromptEncoder  # noqa: E402
from datamodules.records import validate_record  # noqa: E402

RECORDS = [{"instruction": "Why rest a steak?", "response": "So the juices settle " * (i + 1),
            "reference_answer": "The juices settle." if i % 2 else None, "score": 1 + i} for i in range(4)]


@pytest.fixture(scope="module")
def parser():
    argv, sys.argv = sys.argv, sys.argv[:1]
    try:
        return ParseOnly(JudgeModule, JudgeDataModule, args=["fit"],
                         parser_kwargs={"exit_on_error": False, "fit": {"exit_on_error": False}}).parser
    finally:
        sys.argv = argv


def tiny_settings(model: dict, backbone: Path) -> dict:
    settings = {**model, "backbone": str(backbone), "dtype": "float32", "gradient_checkpointing": False}
    if settings.get("lora"):  # the real backbone's module names; the tiny one has its own
        settings["lora"] = {k: v for k, v in settings["lora"].items() if k not in ("layers_to_transform", "target_modules")}
    return settings


def one_step(module: JudgeModule, layout: str) -> None:
    """A training step on four records: forward in training mode, backward, SGD."""
    encoder = PromptEncoder(module.tokenizer, max_length=128, layout=layout)
    ids = [encoder.encode(validate_record(r)).input_ids for r in RECORDS]
    width = max(map(len, ids))
    pad = module.tokenizer.pad_token_id
    left = module.tokenizer.padding_side == "left"
    input_ids = torch.tensor([[pad] * (width - len(x)) + x if left else x + [pad] * (width - len(x)) for x in ids])
    mask = (torch.arange(width)[None, :] >= torch.tensor([width - len(x) for x in ids])[:, None]) if left else \
        (torch.arange(width)[None, :] < torch.tensor([len(x) for x in ids])[:, None])
    module.train()
    raw = module(input_ids, mask.long())
    loss = module.loss_fn(raw, module._target({"score": torch.tensor([r["score"] for r in RECORDS], dtype=torch.float)})) \
        if not module.head.uses_lm_head else raw.float().mean()
    loss.backward()
    with torch.no_grad():
        for p in module.parameters():
            if p.grad is not None:
                p -= 0.05 * p.grad.sign()
    module.eval()


@pytest.mark.parametrize("path", ALL, ids=_id)
def test_every_recipe_exports_to_transformers(parser, path, tiny_llama_dir, tiny_bert_dir, tmp_path):
    cfg = parse(parser, stack(path))
    model, data = cfg.model.as_dict(), cfg.data
    encoder = model["backbone"] == "minilm-l6" or "bert" in model["backbone"].lower()

    def trained():
        torch.manual_seed(0)
        module = JudgeModule(**tiny_settings(model, tiny_bert_dir if encoder else tiny_llama_dir))
        module.prompt_settings = {"layout": data.layout, "use_chat_template": data.use_chat_template, "max_length": 128}
        one_step(module, data.layout)
        if isinstance(getattr(module.head, "proj", None), FoldedBias):
            assert module.head.proj.has_direction  # the decoder recipes' bias, set by the step
        return module

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        before = scores(Judge(trained(), device="cpu"))
        # Each refuses (NotExportable) what it cannot hold; a Judge merges LoRA, so each gets its own copy.
        as_hf = scores(Judge(hf.load_hf_judge(hf.export_hf(trained(), tmp_path / "hf")), device="cpu"))
        as_peft = scores(Judge(peft.load_peft_judge(peft.export_peft(trained(), tmp_path / "peft")), device="cpu"))
    assert as_hf == pytest.approx(before, abs=1e-4) and as_peft == pytest.approx(before, abs=1e-4)


def scores(judge) -> list:
    """The scores of RECORDS; a generating judge's text where it wrote no score (random tiny weights)."""
    return [g.score if g.score is not None else g.feedback for g in judge.grade_many(RECORDS)]
