"""PEFT adapters as judges: one made exactly as the PHUDGE authors' training script makes theirs
(a tiny Phi-3) grades as peft's own ``PeftModel`` on their prompt; ``phudge export --format peft``
writes an adapter that plain peft + transformers load on the base model and score alike."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from datamodules.phudge_prompt import render
from datamodules.records import validate_record
from phudge_lightning.formats import peft
from phudge_lightning.formats import hf
from phudge_lightning.judge import Judge

RUBRIC = {"criteria": "Is the answer right?", **{f"score{i}_description": f"level {i}" for i in range(1, 6)}}
RECORDS = [
    {"instruction": "Why rest a steak?", "response": "So the juices settle " * (i + 1),
     "rubric": RUBRIC if i % 2 else None, "reference_answer": "The juices settle." if i < 2 else None}
    for i in range(4)
]


def authors_adapter(base_dir, folder, num_labels: int, rank: int = 128, seed: int = 0):
    """An adapter as their ``train_phi-3-reg_classi.py`` builds and saves it (LoRA rank r, alpha
    2r, dropout 0.1 on o_proj, qkv_proj, gate_up_proj, down_proj, task SEQ_CLS), its weights then
    drawn at random: a trained adapter's B and score layer are not zero."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import Phi3ForSequenceClassification

    torch.manual_seed(seed)
    labels = {"id2label": {0: 1, 1: 2, 2: 3, 3: 4, 4: 5}, "label2id": {5: 4, 4: 3, 3: 2, 2: 1, 1: 0}} if num_labels == 5 else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Phi3ForSequenceClassification.from_pretrained(base_dir, num_labels=num_labels, **labels)
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
        config = LoraConfig(r=rank, lora_alpha=rank * 2, target_modules=["o_proj", "qkv_proj", "gate_up_proj", "down_proj"],
                            bias="none", lora_dropout=0.1, task_type="SEQ_CLS")
        model = get_peft_model(model, config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name or "modules_to_save" in name:
                p.normal_(0, 0.3 if "lora_B" in name else 1.0)
    model.save_pretrained(folder)
    return folder


def peft_scores(base_dir, folder, texts: list[str], num_labels: int, add_special_tokens: bool = True) -> list[float]:
    """peft's own forward: the base classifier, ``PeftModel.from_pretrained``, the logits read as a score."""
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = PeftModel.from_pretrained(AutoModelForSequenceClassification.from_pretrained(base_dir, num_labels=num_labels),
                                          folder).eval()
    scores = []
    with torch.no_grad():
        for text in texts:
            logits = model(**tokenizer(text, return_tensors="pt", add_special_tokens=add_special_tokens)).logits[0].float()
            scores.append(logits[0].item() if num_labels == 1 else (logits.softmax(-1) @ torch.arange(1.0, num_labels + 1)).item())
    return scores


def judge_scores(judge, records=RECORDS) -> list[float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [g.score for g in judge.grade_many(records)]


@pytest.mark.parametrize("num_labels", [5, 1], ids=["classification", "regression"])
def test_an_adapter_made_as_the_authors_make_theirs_grades_as_peft(tiny_phi3_dir, tmp_path, num_labels):
    folder = authors_adapter(tiny_phi3_dir, tmp_path / "final_lora", num_labels)
    judge = Judge(peft.load_peft_judge(folder), device="cpu")
    assert judge.encoder.layout == "phudge" and judge.score_range == ((1, 5) if num_labels == 5 else (1, 5))
    texts = [render(validate_record(r, require_score=False)) for r in RECORDS]
    assert judge_scores(judge) == pytest.approx(peft_scores(tiny_phi3_dir, folder, texts, num_labels), abs=1e-4)


def test_a_causal_adapter_without_our_settings_is_refused(tiny_phi3_dir, tmp_path):
    folder = authors_adapter(tiny_phi3_dir, tmp_path / "lora", 5, rank=4)
    config = json.loads((folder / peft.CONFIG).read_text())
    (folder / peft.CONFIG).write_text(json.dumps({**config, "task_type": "CAUSAL_LM"}))
    with pytest.raises(ValueError, match="field 'task_type' is 'CAUSAL_LM'"):
        peft.load_peft_judge(folder)


def trained_module(backbone_dir, head, **kw):
    """A judge one training step from its start (so a folded bias has its direction), LoRA and
    head then drawn at random, as a trained judge's are not at their init."""
    from phudge_lightning.model.module import JudgeModule
    from tests.test_folded_bias import batch

    torch.manual_seed(0)
    module = JudgeModule(backbone=str(backbone_dir), head=head, lora={"r": 2, "alpha": 4, "dropout": 0.0}, **kw).train()
    module(*batch(module))
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "lora_B" in name or name.startswith("head."):
                p.normal_(0, 0.3)
    return module.eval()


@pytest.mark.parametrize("kind,head,settings", [
    ("llama", "regression", {"head_params": {"bias": "folded"}}),
    ("phi3", "classification", {"head_params": {"bias": "folded"}}),
    ("bert", "regression", {"pooling": "pooler"}),
    ("phi3", "regression", {"head_params": {"bias": "folded"}, "layout": "phudge"}),
], ids=["llama-regression", "phi3-classification", "bert-pooler", "phi3-authors-prompt"])
def test_export_peft_scores_alike_in_plain_peft_and_read_back(kind, head, settings, tiny_llama_dir, tiny_phi3_dir,
                                                              tiny_bert_dir, tmp_path):
    backbone = {"llama": tiny_llama_dir, "phi3": tiny_phi3_dir, "bert": tiny_bert_dir}[kind]
    layout = settings.pop("layout", "prometheus")
    judged, exported = (trained_module(backbone, head, **settings) for _ in range(2))  # (Judge merges its LoRA)
    for module in (judged, exported):
        module.prompt_settings = {"layout": layout, "use_chat_template": True, "max_length": None}
    expected = judge_scores(Judge(judged, device="cpu"))
    folder = peft.export_peft(exported, tmp_path / "peft")

    files = {p.name for p in folder.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "phudge.json", "README.md", "tokenizer_config.json"} <= files
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["task_type"] == "SEQ_CLS" and config["base_model_name_or_path"] == str(backbone)
    assert ("classifier" if kind == "bert" else "score") in config["modules_to_save"]
    settings_file = json.loads((folder / "phudge.json").read_text())
    assert settings_file["prompt"]["layout"] == layout and settings_file["format"] == peft.FORMAT

    # Plain peft + transformers on the prompt the folder describes.
    from tests.test_export_hf import prompt_texts

    records = [validate_record(r, require_score=False) for r in RECORDS]
    texts = prompt_texts(folder, RECORDS) if layout == "prometheus" else [render(r) for r in records]
    labels = 1 if head == "regression" else 5
    plain = peft_scores(backbone, folder, texts, labels, settings_file["prompt"]["add_special_tokens"])
    assert plain == pytest.approx(expected, abs=1e-4)
    # And back as a judge.
    assert judge_scores(Judge(peft.load_peft_judge(folder), device="cpu")) == pytest.approx(expected, abs=1e-4)


def test_a_fully_fine_tuned_judge_or_a_plain_bias_is_refused(tiny_llama_dir, tmp_path):
    from phudge_lightning.model.module import JudgeModule

    full = JudgeModule(backbone=str(tiny_llama_dir), full_finetune=True, head_params={"bias": "folded"})
    with pytest.raises(hf.NotExportable, match="fully fine-tuned"):
        peft.export_peft(full, tmp_path / "a")
    with pytest.raises(hf.NotExportable, match="has no bias"):
        peft.export_peft(trained_module(tiny_llama_dir, "regression"), tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_phudge_export_format_peft(tiny_llama_dir, tmp_path, capsys):
    from phudge_lightning.export.command import main as export_main
    from phudge_lightning.formats import save

    saved = save(trained_module(tiny_llama_dir, "regression", head_params={"bias": "folded"}), tmp_path / "judge", "judge")
    expected = judge_scores(Judge.load(saved, device="cpu"))
    assert export_main(["--checkpoint", str(saved), "--output", str(tmp_path / "peft"), "--format", "peft"]) == 0
    assert "as a peft adapter of" in capsys.readouterr().out
    assert judge_scores(Judge(peft.load_peft_judge(tmp_path / "peft"), device="cpu")) == pytest.approx(expected, abs=1e-4)
    plain = save(trained_module(tiny_llama_dir, "regression"), tmp_path / "plain", "judge")
    assert export_main(["--checkpoint", str(plain), "--output", str(tmp_path / "no"), "--format", "peft"]) == 2
    assert "cannot be exported as a peft adapter" in capsys.readouterr().err


def test_every_command_reads_the_authors_adapter(tiny_phi3_dir, tmp_path):
    from conftest import phudge_grade_scores
    from phudge_lightning.evaluate.run import main as evaluate_main
    from phudge_lightning.formats import kind_of, load

    folder = authors_adapter(tiny_phi3_dir, tmp_path / "final_lora", 5, rank=8)
    texts = [render(validate_record(r, require_score=False)) for r in RECORDS]
    expected = peft_scores(tiny_phi3_dir, folder, texts, 5)
    assert kind_of(folder).name == "peft"
    assert judge_scores(Judge.load(folder, device="cpu")) == pytest.approx(expected, abs=1e-4)
    assert judge_scores(Judge(load(folder), device="cpu")) == pytest.approx(expected, abs=1e-4)
    assert phudge_grade_scores(folder, RECORDS, tmp_path) == pytest.approx(expected, abs=1e-4)
    # phudge evaluate: chosen (a) over rejected (b), right where a scores higher
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": RECORDS[0]["instruction"], "chosen": a["response"],
                                         "rejected": b["response"], "subset": "hep-python", "id": i}) + "\n"
                             for i, (a, b) in enumerate([(RECORDS[0], RECORDS[1]), (RECORDS[2], RECORDS[3])])))
    output = tmp_path / "eval.json"
    assert evaluate_main(["--checkpoint", str(folder), "--benchmark", "rewardbench", "--data", str(pairs),
                          "--device", "cpu", "--output", str(output)]) == 0
    bare = [Judge.load(folder, device="cpu").grade(RECORDS[0]["instruction"], r["response"]).score for r in RECORDS]
    assert json.loads(output.read_text())["accuracy"] == ((bare[0] > bare[1]) + (bare[2] > bare[3])) / 2


def test_an_adapter_is_read_by_its_hub_id(tiny_phi3_dir, tmp_path, monkeypatch):
    import huggingface_hub

    from phudge_lightning import hub_reach
    from phudge_lightning.formats import kind_of

    folder = authors_adapter(tiny_phi3_dir, tmp_path / "final_lora", 1, rank=8)
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache",
                        lambda repo_id, filename, **kw: str(folder / filename) if repo_id == "authors/phudge" else None)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo_id, **kw: str(folder))
    monkeypatch.setattr(hub_reach, "unreachable", lambda: "HF_HUB_OFFLINE is set")
    assert kind_of("authors/phudge").name == "peft" and kind_of("someone/else").name == "hf"
    texts = [render(validate_record(r, require_score=False)) for r in RECORDS]
    assert judge_scores(Judge.load("authors/phudge", device="cpu")) == \
        pytest.approx(peft_scores(tiny_phi3_dir, folder, texts, 1), abs=1e-4)


def test_a_foreign_adapter_is_refused_in_one_line(tiny_phi3_dir, tmp_path):
    from phudge_lightning.formats import CheckpointError, kind_of, load

    folder = authors_adapter(tiny_phi3_dir, tmp_path / "lora", 1, rank=4)
    (folder / peft.WEIGHTS).unlink()
    with pytest.raises(CheckpointError, match="holds adapter_config.json but no adapter_model.safetensors"):
        kind_of(folder)
    folder = authors_adapter(tiny_phi3_dir, tmp_path / "lora2", 1, rank=4)
    config = json.loads((folder / peft.CONFIG).read_text())
    (folder / peft.CONFIG).write_text(json.dumps({**config, "task_type": "TOKEN_CLS"}))
    with pytest.raises(CheckpointError, match="field 'task_type' is 'TOKEN_CLS'"):
        load(folder)


def test_the_adapter_names_the_base_it_was_given_not_the_local_folder(tiny_bert_dir, tmp_path):
    """An embedded backbone is loaded from a package folder; its adapter names the hub id of the
    same weights (``base_model``), so that another machine's peft finds them."""
    module = trained_module(tiny_bert_dir, "regression", pooling="pooler")
    folder = peft.export_peft(module, tmp_path / "peft", base_model="someone/the-base")
    assert json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"] == "someone/the-base"
    assert peft.base_of(folder) == "someone/the-base"
