"""``phudge export --format hf``: parity of the exported transformers model with the judge, the
refusals, the prompt template, the model card, the hub push (dry) and loading the folder back."""

from __future__ import annotations

import io
import itertools
import json
import os
import re
import warnings
from contextlib import redirect_stdout
from pathlib import Path

import pytest
import torch

from conftest import REPO, judge_module, phudge_grade_scores, write_jsonl
from datamodules import conversation
from datamodules.prometheus import render
from datamodules.prompt import PromptEncoder
from datamodules.records import validate_record
from phudge_lightning import hub_reach
from phudge_lightning.export import card, hub
from phudge_lightning.formats import hf
from phudge_lightning.export.command import main as export_main
from phudge_lightning.formats.prompt_template import render_template
from phudge_lightning.judge import Judge
from phudge_lightning.model.module import JudgeModule

FIXTURE_RUN = Path(__file__).resolve().parents[2] / "shared/fixtures/deepspeed-zero2-tiny-phi3/regression/phi3-lora128-regression/version_0"
RUBRIC = {"criteria": "Is the answer right and clear?", **{f"score{i}_description": f"level {i}" for i in range(1, 6)}}
RECORDS = [
    {"instruction": "Why is the sky blue?", "response": "Rayleigh scattering of sunlight " * (i + 1),
     "rubric": RUBRIC if i % 2 else None, "reference_answer": "Short blue light scatters most." if i % 3 else None}
    for i in range(5)
]
# (backbone kind, head, JudgeModule settings) of every exportable form
EXPORTABLE = [
    ("llama", "regression", {"head_params": {"bias": False}}),
    ("phi3", "classification", {"head_params": {"bias": False}}),
    ("llama", "classification", {}),  # five equal biases: softmax ignores them
    ("bert", "regression", {"pooling": "pooler"}),
    ("bert", "classification", {"pooling": "pooler"}),
    ("llama", "classification", {"head_params": {"bias": False}, "score_range": [1, 10]}),  # ten labels 1..10
]


@pytest.fixture
def backbones(tiny_llama_dir, tiny_phi3_dir, tiny_bert_dir):
    return {"llama": tiny_llama_dir, "phi3": tiny_phi3_dir, "bert": tiny_bert_dir}


def judge_scores(module, records=RECORDS):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Judge(module, device="cpu").grade_many(records)


def prompt_texts(folder: Path, records=RECORDS) -> list[str]:
    """The texts a user builds from the folder alone: the Jinja template, then the chat template."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    settings = json.loads((folder / hf.SETTINGS).read_text())
    import jinja2

    template = jinja2.Template((folder / "prompt_template.jinja").read_text())
    texts = [template.render(**{k: r.get(k) for k in ("instruction", "response", "rubric", "reference_answer", "context")})
             for r in records]
    if settings["prompt"].get("response_turn") == "assistant":  # the conversation layout in a chat
        texts = [tokenizer.apply_chat_template([{"role": "user", "content": t}, {"role": "assistant", "content": r["response"]}],
                                               tokenize=False).rstrip() for t, r in zip(texts, records)]
    elif settings["prompt"]["use_chat_template"]:
        texts = [tokenizer.apply_chat_template([{"role": "user", "content": t}], tokenize=False, add_generation_prompt=True)
                 for t in texts]
    return texts


def expected_score(logits: torch.Tensor, low: int = 1) -> torch.Tensor:
    n = logits.shape[-1]
    return logits[:, 0] if n == 1 else logits.softmax(-1) @ torch.arange(float(low), float(low + n))


# -- the prompt template -------------------------------------------------------------------------

@pytest.mark.parametrize("rubric,reference,context", itertools.product(
    [None, "a plain rubric", RUBRIC, "  "], [None, "ref\nanswer", ""], [None, "one passage", ["p1", "p2"]]))
def test_prompt_template_renders_as_the_judge_does(rubric, reference, context):
    raw = {"instruction": "Q? {{ not jinja }}\n", "response": " A %} B", "rubric": rubric,
           "reference_answer": reference, "context": context}
    assert render_template(**raw) == render(validate_record(raw, require_score=False))
    if not isinstance(rubric, dict):  # on another range the template names it, as render does
        assert render_template((1, 10), **raw) == render(validate_record(raw, require_score=False), (1, 10))


@pytest.mark.parametrize("rubric,reference,context", itertools.product(
    [None, "a plain rubric", RUBRIC, "  "], [None, "ref\nanswer", ""], [None, "one passage", ["p1", "p2"]]))
def test_conversation_template_renders_the_user_turn_or_the_whole_text(rubric, reference, context):
    raw = {"instruction": "Q? {{ not jinja }}\n", "response": " A %} B", "rubric": rubric,
           "reference_answer": reference, "context": context}
    record = validate_record(raw, require_score=False)
    assert render_template(layout="conversation", chat=True, **raw) == conversation.user_turn(record)
    assert render_template(layout="conversation", chat=False, **raw) == conversation.render_plain(record)


# -- parity --------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind,head,settings", EXPORTABLE, ids=lambda p: p if isinstance(p, str) else "")
def test_exported_model_scores_as_the_judge(kind, head, settings, backbones, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    module = judge_module(backbones[kind], head, **settings)
    grades = judge_scores(module)
    folder = hf.export_hf(module, tmp_path / "hf")
    config = json.loads((folder / "config.json").read_text())
    low, high = settings.get("score_range", [1, 5])
    assert len(config["id2label"]) == (1 if head == "regression" else high - low + 1)
    if head == "classification":
        assert config["id2label"] == {str(i): str(low + i) for i in range(high - low + 1)}

    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    chat = json.loads((folder / hf.SETTINGS).read_text())["prompt"]["use_chat_template"]
    assert chat == (kind != "bert")
    texts = prompt_texts(folder)
    # The user's tokens are the judge's tokens.
    encoder = PromptEncoder(module.tokenizer, use_chat_template=True, score_range=module.score_range)
    for text, record in zip(texts, RECORDS):
        ids = tokenizer(text, add_special_tokens=not chat)["input_ids"]
        assert ids == encoder.encode(validate_record(record, require_score=False)).input_ids

    # One at a time and in one padded batch: float32 equal up to rounding.
    tokenizer.padding_side = "left" if kind != "bert" else "right"
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=not chat)
    with torch.no_grad():
        logits = model(**batch).logits.float()
    scores = expected_score(logits, low)
    assert scores.tolist() == pytest.approx([g.score for g in grades], abs=1e-5)
    # Loaded back, the folder grades as the judge (on its range, with its prompt).
    again = Judge(hf.load_hf_judge(folder), device="cpu").grade_many(RECORDS)
    assert [g.score for g in again] == pytest.approx([g.score for g in grades], abs=1e-5)
    if head == "classification":
        assert logits.softmax(-1).flatten().tolist() == pytest.approx(sum((g.probabilities for g in grades), []), abs=1e-5)

    # pipeline("text-classification", function_to_apply="none"): the same logits.
    pipe = pipeline("text-classification", model=str(folder), function_to_apply="none", top_k=None, device="cpu")
    out = pipe(texts, add_special_tokens=not chat)
    by_label = [{d["label"]: d["score"] for d in row} for row in out]
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    piped = torch.tensor([[row[label] for label in labels] for row in by_label])
    assert piped.flatten().tolist() == pytest.approx(logits.flatten().tolist(), abs=1e-5)


@pytest.mark.parametrize("kind,head,settings", [EXPORTABLE[0], EXPORTABLE[3]], ids=["llama-regression", "bert-regression"])
def test_bfloat16_judge_exports_within_bfloat16_tolerance(kind, head, settings, backbones, tmp_path):
    from transformers import AutoModelForSequenceClassification

    module = judge_module(backbones[kind], head, dtype="bfloat16", **settings)
    grades = judge_scores(module)
    folder = hf.export_hf(module, tmp_path / "hf")
    assert json.loads((folder / "config.json").read_text())["dtype"] == "bfloat16"
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    assert next(model.parameters()).dtype == torch.bfloat16
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    chat = kind != "bert"
    for text, grade in zip(prompt_texts(folder), grades):
        with torch.no_grad():
            score = model(**tokenizer(text, return_tensors="pt", add_special_tokens=not chat)).logits.float()[0, 0]
        # bfloat16 keeps 8 bits of mantissa: the score layer's own rounding is 2^-8 of its size.
        assert float(score) == pytest.approx(grade.score, abs=2e-2 * max(1.0, abs(grade.score)))


def test_causal_judge_exports_a_merged_causal_lm(tiny_llama_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    module = judge_module(tiny_llama_dir, "causal", max_new_tokens=6)
    ids = torch.tensor([[1, 5, 9, 17, 33]])
    with torch.no_grad():
        expected = module.backbone(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
    grades = judge_scores(module, RECORDS[:2])
    folder = hf.export_hf(module, tmp_path / "hf")
    assert json.loads((folder / "config.json").read_text())["architectures"] == ["LlamaForCausalLM"]
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    with torch.no_grad():
        assert torch.allclose(model(input_ids=ids).logits, expected, atol=1e-5)
    again = Judge.load(folder, device="cpu").grade_many(RECORDS[:2])
    assert [g.feedback for g in again] == [g.feedback for g in grades]


# -- what cannot be exported ---------------------------------------------------------------------

@pytest.mark.parametrize("kind,head,settings,reason", [
    ("llama", "regression", {}, "no bias"),
    ("llama", "regression", {"pooling": "mean"}, "pools 'mean'"),
    ("bert", "regression", {"pooling": "first"}, "pooling pooler"),
    ("bert", "classification", {"pooling": "last"}, "pooling pooler"),
])
def test_a_judge_the_class_cannot_hold_is_refused_with_the_reason(kind, head, settings, reason, backbones, tmp_path, capsys):
    from phudge_lightning.formats import save

    module = judge_module(backbones[kind], head, **settings)
    with pytest.raises(hf.NotExportable, match=re.escape(reason)):
        hf.export_hf(module, tmp_path / "direct")
    assert not (tmp_path / "direct").exists()  # refused before writing anything
    saved = save(module, tmp_path / "judge", "judge")
    code = export_main(["--checkpoint", str(saved), "--output", str(tmp_path / "hf"), "--format", "hf"])
    ours = [line for line in capsys.readouterr().err.splitlines() if line.startswith("phudge export")]
    assert code == 2 and len(ours) == 1 and reason in ours[0] and not (tmp_path / "hf").exists()


def test_classification_biases_that_differ_are_refused_on_a_decoder(tiny_llama_dir, tmp_path):
    module = judge_module(tiny_llama_dir, "classification")
    with torch.no_grad():
        module.head.proj.bias.copy_(torch.tensor([0.0, 0.1, 0.2, 0.3, 0.4]))
    with pytest.raises(hf.NotExportable, match="no bias"):
        hf.export_hf(module, tmp_path / "hf")


# -- loading back, grading -----------------------------------------------------------------------

def test_judge_load_and_phudge_grade_take_the_exported_folder(tiny_llama_dir, tmp_path):
    module = judge_module(tiny_llama_dir, "classification", head_params={"bias": False})
    grades = judge_scores(module)
    folder = hf.export_hf(module, tmp_path / "hf")
    assert hf.is_hf_judge(folder) and not hf.is_hf_judge(tmp_path)
    loaded = Judge.load(folder, device="cpu").grade_many(RECORDS)
    assert [g.score for g in loaded] == pytest.approx([g.score for g in grades], abs=1e-5)
    assert sum((g.probabilities for g in loaded), []) == pytest.approx(sum((g.probabilities for g in grades), []), abs=1e-5)

    assert phudge_grade_scores(folder, RECORDS, tmp_path) == pytest.approx([g.score for g in grades], abs=1e-5)


def test_a_hub_id_is_downloaded_then_loaded(tiny_bert_dir, tmp_path, monkeypatch):
    import huggingface_hub

    folder = hf.export_hf(judge_module(tiny_bert_dir, "regression", pooling="pooler"), tmp_path / "hf")
    asked = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo_id, **kw: asked.append((repo_id, kw)) or str(folder))
    monkeypatch.setattr(hub_reach, "unreachable", lambda: None)
    judge = Judge.load("someone/tiny-judge", device="cpu")
    assert asked == [("someone/tiny-judge", {"local_files_only": False})] and judge.grade("Q", "A").score is not None
    assert not hf.is_hub_id("runs/x/best.ckpt") and not hf.is_hub_id(str(folder))
    # with the hub out of reach, the cached copy is read, without asking the network
    monkeypatch.setattr(hub_reach, "unreachable", lambda: "HF_HUB_OFFLINE is set")
    assert Judge.load("someone/tiny-judge", device="cpu").grade("Q", "A").score == pytest.approx(judge.grade("Q", "A").score)
    assert asked[-1] == ("someone/tiny-judge", {"local_files_only": True})


def test_a_hub_id_neither_cached_nor_reachable_fails_at_once_in_one_line(tmp_path, monkeypatch, capsys):
    """Offline, a wrong hub-like path is told in one line, exit 2: not on disk, and the hub
    cannot be reached (rather than huggingface_hub's retries and chained tracebacks)."""
    from phudge_lightning.grade import main as grade_main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rows = write_jsonl(tmp_path / "in.jsonl", [{"instruction": "Q", "response": "A"}])
    assert grade_main(["--checkpoint", "nobody-here/no-such-judge", "--input", str(rows),
                       "--output", str(tmp_path / "out.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "nobody-here/no-such-judge does not exist locally, and the hub is not reachable" in err
    assert "HF_HUB_OFFLINE is set" in err
    # phudge grade says so before importing the model code (torch, transformers, Lightning: seconds)
    import subprocess
    import sys

    probe = ("import sys; from phudge_lightning.cli import main; code = main(sys.argv[1:]); "
             "print(sorted({'torch', 'transformers', 'lightning'} & set(sys.modules))); sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", probe, "grade", "--checkpoint", "nobody-here/no-such-judge", "--input",
                           str(rows), "--output", str(tmp_path / "out.jsonl")], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert (done.returncode, done.stdout.strip()) == (2, "[]"), done.stderr
    assert done.stderr.count("\n") == 1 and "does not exist locally" in done.stderr


def test_the_hub_is_unreachable_when_offline_or_its_endpoint_does_not_answer(monkeypatch):
    import socket

    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with socket.socket() as listening:  # a local endpoint that accepts connections
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
        assert hub_reach.unreachable() is None
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        assert hub_reach.unreachable() == "HF_HUB_OFFLINE is set"
    monkeypatch.delenv("HF_HUB_OFFLINE")
    reason = hub_reach.unreachable()  # the same port, closed now: refused
    assert reason is not None and reason.startswith(f"127.0.0.1:{port}: ")


def test_a_missing_folder_beside_its_parent_is_a_local_path_not_a_hub_id(tmp_path, monkeypatch):
    """``runs/judge`` mistyped next to a ``runs/`` folder fails at once, naming the path,
    instead of waiting on the network as the hub id ``runs/judge``."""
    from phudge_lightning.formats import CheckpointError, check_paths

    monkeypatch.chdir(tmp_path)
    assert hf.is_hub_id("runs/judge")  # no runs/ here: it could be a hub id
    (tmp_path / "runs").mkdir()
    assert not hf.is_hub_id("runs/judge")
    with pytest.raises(CheckpointError, match="no checkpoint at runs/judge"):
        check_paths(["runs/judge"])


# -- the model card ------------------------------------------------------------------------------

def test_card_from_a_real_run_and_its_snippet_grades_as_the_judge(tiny_llama_dir, small_records_file, tmp_path):
    """A short real fit logged with TensorBoard; the card quotes its val figures at the exported
    checkpoint's step, and the card's own snippet prints the judge's score."""
    import lightning as L
    import yaml
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import TensorBoardLogger

    from datamodules import JudgeDataModule
    from phudge_lightning.report.runs import read_scalars

    torch.manual_seed(0)
    module = JudgeModule(backbone=str(tiny_llama_dir), head="regression", head_params={"bias": "folded"}, lr=1e-2,
                         lora={"r": 2, "alpha": 4, "dropout": 0.0})
    dm = JudgeDataModule(data=str(small_records_file), backbone=str(tiny_llama_dir),
                                      batch_size=4, val_fraction=0.2)
    logger = TensorBoardLogger(save_dir=tmp_path, name="run")
    best = ModelCheckpoint(monitor="val/loss", mode="min", filename="best-{epoch}-{step}")
    trainer = L.Trainer(accelerator="cpu", max_steps=4, limit_train_batches=2, limit_val_batches=1, num_sanity_val_steps=0,
                        logger=logger, callbacks=[best], enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, dm)
    ckpt = Path(best.best_model_path)
    (ckpt.parent.parent / "config.yaml").write_text(yaml.safe_dump(
        {"data": {"data": "small.jsonl", "val_fraction": 0.2}, "trainer": {"max_steps": 4}}))
    results = tmp_path / "vicuna.json"
    results.write_text(json.dumps({"benchmark": "vicuna", "data": "vicuna_eval.json", "n": 320, "pearson": 0.3125}))

    out = tmp_path / "hf"
    assert export_main(["--checkpoint", str(ckpt), "--output", str(out), "--format", "hf", "--results", str(results)]) == 0
    readme = (out / "README.md").read_text()
    front = yaml.safe_load(readme.split("---")[1])
    assert front["library_name"] == "transformers" and front["pipeline_tag"] == "text-classification"
    assert front["license"] == "other" and "base_model" not in front  # a local backbone: no hub id, no known licence
    step = card.checkpoint_step(ckpt)
    logged = dict(read_scalars(ckpt.parent.parent)["val/loss"])
    at = max(s for s in logged if s <= step)
    assert f"at step {at}" in readme and f"{logged[at]:.4f}" in readme
    assert "| vicuna | vicuna_eval.json | 320 | 0.3125 |" in readme
    assert "`small.jsonl` (0.2 held out" in readme and "run limits: max_steps 4" in readme

    code = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    code = code.replace('judge = "hf"', f'judge = "{out}"')  # the card names the repository; here it is the folder
    printed = io.StringIO()
    with redirect_stdout(printed):
        exec(compile(code, "card-snippet", "exec"), {})
    record = {"instruction": "Why is the sky blue?",
              "response": "Sunlight is scattered by air molecules, blue light the most (Rayleigh scattering)."}
    fitted = JudgeModule.load_from_checkpoint(str(ckpt), map_location="cpu")
    # The folded bias took its direction in training and travels in the checkpoint.
    assert fitted.head.proj.has_direction and fitted.head.proj.offset.item() != 3.0
    assert float(printed.getvalue()) == pytest.approx(judge_scores(fitted, [record])[0].score, abs=1e-5)


def test_card_reads_the_figures_of_the_gpu_run_fixture():
    if not FIXTURE_RUN.exists():
        pytest.skip("shared fixtures not here")
    ckpt = FIXTURE_RUN / "checkpoints/best-epoch=0-step=9.ckpt"
    figures, at = card.run_figures(card.run_folder(ckpt), card.checkpoint_step(ckpt))
    # Lightning logs the validation that chose step 9's checkpoint at step 8: the last one at or before it.
    assert at == 8 and figures["val/loss"] == 2.625 and figures["val/mae"] == 1.375
    settings = {"head": "regression", "pooling": "last", "max_new_tokens": 256,
                "prompt": {"use_chat_template": True, "max_length": 512},
                "hparams": {"backbone": "microsoft/Phi-3-mini-4k-instruct", "head": "regression", "loss": "mse",
                            "lora": {"r": 128, "alpha": 256, "dropout": 0.05}, "lr": 2e-5, "weight_decay": 0.005,
                            "warmup_ratio": 0.05, "dtype": "bfloat16"}}
    text = card.model_card(settings, repo="me/judge", checkpoint=ckpt)
    assert "license: mit" in text and "base_model: microsoft/Phi-3-mini-4k-instruct" in text
    assert "| 2.6250 |" in text and "at step 8" in text and "- training data: `demo`" in text


def test_bad_results_file_is_refused_naming_it(tmp_path, tiny_llama_dir, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"pearson": 0.3}, {"foo": 1}]))
    assert export_main(["--checkpoint", str(tmp_path), "--output", str(tmp_path / "hf"), "--format", "hf",
                        "--results", str(bad)]) == 2
    assert f"--results {bad}: item 1" in capsys.readouterr().err


# -- the hub -------------------------------------------------------------------------------------

def test_push_dry_run_lists_the_files_and_sends_nothing(tiny_bert_dir, tmp_path, monkeypatch, capsys):
    import huggingface_hub

    from phudge_lightning.formats import save

    monkeypatch.setattr(huggingface_hub, "HfApi", lambda *a, **k: pytest.fail("a dry run built a hub client"))
    saved = save(judge_module(tiny_bert_dir, "regression", pooling="pooler"), tmp_path / "judge", "judge")
    code = export_main(["--checkpoint", str(saved), "--output", str(tmp_path / "hf"), "--format", "hf",
                        "--push-to-hub", "me/tiny-judge", "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0 and "would send" in out and "https://huggingface.co/me/tiny-judge" in out
    for name in ("config.json", "model.safetensors", "README.md", "phudge.json", "prompt_template.jinja", "tokenizer.json"):
        assert f"  {name}  " in out


def test_push_uploads_the_folder_with_a_token_and_refuses_without(tmp_path, monkeypatch):
    import huggingface_hub

    (tmp_path / "config.json").write_text("{}")
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache/x").write_text("not sent")
    calls = []

    class FakeApi:
        def __init__(self, token):
            calls.append(("token", token))

        def create_repo(self, repo_id, **kw):
            calls.append(("create", repo_id, kw["private"]))

        def upload_folder(self, folder_path, repo_id, **kw):
            calls.append(("upload", folder_path, repo_id))

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(hub.PushError, match="no hub token"):
        hub.push(tmp_path, "me/judge")
    assert calls == []
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    assert hub.push(tmp_path, "me/judge", private=True) == [("config.json", 2)]
    assert calls == [("token", "hf_secret"), ("create", "me/judge", True), ("upload", str(tmp_path), "me/judge")]


def test_pooler_pooling_needs_a_pooler_and_bias_false_drops_the_bias(tiny_llama_dir, tiny_bert_dir):
    with pytest.raises(ValueError, match="pooling 'pooler' needs a backbone with a pooler"):
        JudgeModule(backbone=str(tiny_llama_dir), pooling="pooler")
    module = judge_module(tiny_bert_dir, "regression", pooling="pooler")
    ids = torch.tensor([[2, 40, 41, 3]])
    with torch.no_grad():
        out = module.backbone(input_ids=ids, attention_mask=torch.ones_like(ids))
        cls = out.last_hidden_state[:, 0]
        pooler = module.backbone.base_model.model.pooler.dense  # peft-wrapped: LoRA included
        assert torch.allclose(module(ids, torch.ones_like(ids)), module.head(torch.tanh(pooler(cls))))
    assert JudgeModule(backbone=str(tiny_llama_dir), head_params={"bias": False}).head.proj.bias is None


@pytest.mark.parametrize("kind,settings", [("bert", {"pooling": "pooler"}), ("llama", {"head_params": {"bias": False}})])
def test_a_conversation_layout_judge_exports_and_its_template_builds_its_tokens(kind, settings, backbones, tmp_path):
    """The conversation layout as a user builds it from the folder: the whole text for an encoder,
    the user's turn and the response as the assistant's for a chat model. Same tokens, same scores."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    module = judge_module(backbones[kind], "regression", **settings)
    module.prompt_settings = {"max_length": 256, "use_chat_template": True, "layout": "conversation"}
    grades = judge_scores(module)
    folder = hf.export_hf(module, tmp_path / "hf")
    prompt = json.loads((folder / hf.SETTINGS).read_text())["prompt"]
    chat = kind != "bert"
    assert prompt["layout"] == "conversation" and prompt["use_chat_template"] == chat
    assert prompt.get("response_turn") == ("assistant" if chat else None)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    encoder = PromptEncoder(module.tokenizer, layout="conversation")
    texts = prompt_texts(folder)
    for text, record in zip(texts, RECORDS):
        ids = tokenizer(text, add_special_tokens=not chat)["input_ids"]
        assert ids == encoder.encode(validate_record(record, require_score=False)).input_ids
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        scores = [model(**tokenizer(t, return_tensors="pt", add_special_tokens=not chat)).logits[0, 0].item() for t in texts]
    assert scores == pytest.approx([g.score for g in grades], abs=1e-5)
    assert [g.score for g in Judge(hf.load_hf_judge(folder), device="cpu").grade_many(RECORDS)] == \
        pytest.approx([g.score for g in grades], abs=1e-5)
    # The model card's snippet builds the same text and prints the judge's score.
    code = card.snippet("judge-repo", json.loads((folder / hf.SETTINGS).read_text())).replace('"judge-repo"', repr(str(folder)))
    printed = io.StringIO()
    with redirect_stdout(printed):
        exec(compile(code, "card-snippet", "exec"), {})
    sky = {"instruction": "Why is the sky blue?",
           "response": "Sunlight is scattered by air molecules, blue light the most (Rayleigh scattering)."}
    assert float(printed.getvalue()) == pytest.approx(judge_scores(module, [sky])[0].score, abs=1e-5)
