"""The model card (``README.md``) of an exported judge, in the hub's form: YAML front matter
(license, base_model, library_name, pipeline_tag, tags), then what the judge is, how it was
trained, the figures it reached, its prompt and a snippet that grades with plain transformers.

Figures come from the run itself: the TensorBoard event files beside the checkpoint
(``.../version_0/events.out.tfevents.*`` for ``.../version_0/checkpoints/best-....ckpt``), read
at the checkpoint's step, and the run's ``config.yaml`` (data, steps); and from ``phudge
evaluate --output`` files given with ``--results``. A figure that is not found is not written.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from datamodules.backbones import EMBEDDED
from phudge_lightning.formats.prompt_template import how_to_build

# Licences of the backbones this project names; any other is the exporter's to state (--license).
LICENSES = {
    "sentence-transformers/all-MiniLM-L6-v2": "apache-2.0",
    "HuggingFaceTB/SmolLM2-135M-Instruct": "apache-2.0",
    "microsoft/Phi-3-mini-4k-instruct": "mit",
}
VAL_METRICS = ("val/pearson", "val/spearman", "val/kendall", "val/r2", "val/mae", "val/mse", "val/accuracy", "val/loss")
RESULT_KEYS = ("n", "pearson", "spearman", "kendall", "r2", "mae", "mse", "accuracy", "accuracy_with_ties")


def base_model_id(backbone: str) -> str | None:
    """The hub id of a backbone: itself, or the embedded name's source; None for a local folder."""
    if backbone in EMBEDDED:
        return EMBEDDED[backbone].hub_id
    if Path(backbone).exists() or not re.fullmatch(r"[\w.-]+/[\w.-]+", backbone):
        return None
    return backbone


def run_folder(checkpoint: str | Path) -> Path | None:
    """The logger folder of a checkpoint that Lightning saved under ``<version>/checkpoints/``."""
    checkpoint = Path(checkpoint)
    for folder in (checkpoint.parent.parent, checkpoint.parent):
        if any(folder.glob("events.out.tfevents.*")) or (folder / "config.yaml").is_file():
            return folder
    return None


def checkpoint_step(checkpoint: str | Path) -> int | None:
    """The step in a Lightning checkpoint name (``best-epoch=2-step=45.ckpt``)."""
    match = re.search(r"step=(\d+)", Path(checkpoint).name)
    return int(match.group(1)) if match else None


def run_figures(folder: Path, step: int | None) -> tuple[dict[str, float], int | None]:
    """The validation figures logged at ``step`` (or the last validation before it; the last
    one when ``step`` is None), and the step they were logged at."""
    from phudge_lightning.report.runs import read_scalars

    scalars = read_scalars(folder)
    points = scalars.get("val/loss") or scalars.get("val/pearson") or []
    steps = [s for s, _ in points if step is None or s <= step]
    if not steps:
        return {}, None
    at = max(steps)
    figures = {}
    for tag in VAL_METRICS:
        values = dict(scalars.get(tag, []))
        if at in values:
            figures[tag] = values[at]
    return figures, at


def run_config(folder: Path | None) -> dict:
    """The run's ``config.yaml`` (LightningCLI writes it beside the event files), or {}."""
    import yaml

    if folder is None or not (folder / "config.yaml").is_file():
        return {}
    return yaml.safe_load((folder / "config.yaml").read_text()) or {}


def read_results(paths: list[str | Path]) -> list[dict]:
    """``phudge evaluate --output`` files: each a result object or a list of them."""
    results = []
    for path in paths:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"--results {path}: not a readable JSON file ({e})") from None
        for i, item in enumerate(data if isinstance(data, list) else [data]):
            if not isinstance(item, dict) or not any(k in item for k in RESULT_KEYS):
                raise ValueError(f"--results {path}: item {i} is not a phudge evaluate result (no {', '.join(RESULT_KEYS[1:4])}...)")
            results.append(item)
    return results


def _number(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def figures_section(figures: dict, at: int | None, results: list[dict]) -> str:
    lines = []
    if figures:
        lines += [f"On the run's validation rows, at step {at} (the exported checkpoint), from its TensorBoard logs:", "",
                  "| " + " | ".join(figures) + " |", "|" + " --- |" * len(figures),
                  "| " + " | ".join(_number(v) for v in figures.values()) + " |", ""]
    if results:
        keys = [k for k in RESULT_KEYS if any(k in r for r in results)]
        lines += ["On benchmarks (`phudge evaluate`):", "", "| benchmark | data | " + " | ".join(keys) + " |",
                  "| --- | --- |" + " --- |" * len(keys)]
        for r in results:
            lines.append(f"| {r.get('benchmark', '?')} | {r.get('data', '')} | "
                         + " | ".join(_number(r[k]) if k in r else "" for k in keys) + " |")
        lines.append("")
    return "\n".join(lines) if lines else "No evaluation figures were found in the run's logs or given with `--results`.\n"


def snippet(repo: str, settings: dict) -> str:
    """Python that grades one response with transformers, jinja2 and huggingface_hub only."""
    head, prompt = settings["head"], settings["prompt"]
    chat = prompt["use_chat_template"]
    if prompt.get("response_turn"):  # the conversation layout: the response is the assistant's turn
        build = ('text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}, {"role": "assistant", '
                 '"content": response}],\n                                     tokenize=False).rstrip()\n')
    else:
        build = ('text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, '
                 'add_generation_prompt=True)\n' if chat else "text = prompt\n")
    tokenise = f'inputs = tokenizer(text, return_tensors="pt", add_special_tokens={not chat})\n'
    if head == "causal":
        load = "model = AutoModelForCausalLM.from_pretrained(folder).eval()\n"
        grade = (f"with torch.no_grad():\n    out = model.generate(**inputs, max_new_tokens={settings['max_new_tokens']}, "
                 "do_sample=False)\n"
                 "feedback = tokenizer.decode(out[0, inputs['input_ids'].shape[1]:], skip_special_tokens=True)\n"
                 "found = re.findall(r\"\\[RESULT\\]\\s*\\(?\\s*([1-5](?:\\.\\d+)?)\\b\", feedback)\n"
                 "score = float(found[-1]) if found else None\n")
        imports = "import os, re\n\nimport jinja2, torch\nfrom huggingface_hub import snapshot_download\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n"
    else:
        load = "model = AutoModelForSequenceClassification.from_pretrained(folder).eval()\n"
        read = ("score = logits[0].item()\n" if head == "regression" else
                "probabilities = logits.softmax(-1)  # of the scores named by id2label\n"
                "values = torch.tensor([float(model.config.id2label[i]) for i in range(len(probabilities))])\n"
                "score = (probabilities * values).sum().item()\n")
        grade = "with torch.no_grad():\n    logits = model(**inputs).logits[0].float()\n" + read
        imports = ("import os\n\nimport jinja2, torch\nfrom huggingface_hub import snapshot_download\n"
                   "from transformers import AutoModelForSequenceClassification, AutoTokenizer\n")
    return (
        imports + "\n"
        f'judge = "{repo}"  # the hub id, or the exported folder\n'
        "folder = judge if os.path.isdir(judge) else snapshot_download(judge)\n"
        "tokenizer = AutoTokenizer.from_pretrained(folder)\n" + load +
        'template = jinja2.Template(open(os.path.join(folder, "prompt_template.jinja")).read())\n'
        'response = "Sunlight is scattered by air molecules, blue light the most (Rayleigh scattering)."\n'
        'prompt = template.render(instruction="Why is the sky blue?", response=response,\n'
        '                         rubric=None, reference_answer=None, context=None)\n'
        + build + tokenise + grade + "print(score)\n"
    )


def model_card(settings: dict, *, repo: str, license: str | None = None, checkpoint: str | Path | None = None,
               results: list[dict] | None = None) -> str:
    """The README.md text for a folder written by ``export_hf`` with ``settings`` (its phudge.json)."""
    hp = settings["hparams"]
    head = settings["head"]
    base = base_model_id(hp["backbone"])
    license = license or LICENSES.get(base or "", "other")
    folder = run_folder(checkpoint) if checkpoint else None
    figures, at = run_figures(folder, checkpoint_step(checkpoint)) if folder and any(folder.glob("events.out.tfevents.*")) else ({}, None)
    config = run_config(folder)
    data, trainer = config.get("data") or {}, config.get("trainer") or {}
    pipeline_tag = "text-generation" if head == "causal" else "text-classification"
    front = ["---", f"license: {license}"]
    if base:
        front.append(f"base_model: {base}")
    front += ["library_name: transformers", f"pipeline_tag: {pipeline_tag}",
              "tags:", "- llm-judge", "- phudge", f"- {head}-head", "- lora" if hp.get("lora") and not hp.get("full_finetune") else "- full-weights", "---", ""]
    lora = hp.get("lora")
    lora_text = ("none: the backbone was frozen, the head trained alone" if lora is None and not hp.get("full_finetune")
                 else "none: every weight was fine-tuned" if hp.get("full_finetune")
                 else ", ".join(f"{k} {v}" for k, v in lora.items()) + " (merged into the weights here)")
    loss = hp.get("loss") or {"regression": "mse", "classification": "emd_squared", "causal": "causal_lm"}[head]
    read = {"regression": "one output: the score on the judge's scale (`num_labels: 1`)",
            "classification": "one logit per integer score, labelled by `id2label`; the score is their expected value, sum_k s_k softmax(logits)_k",
            "causal": "generates a feedback ending in `[RESULT] n`; n is the score"}[head]
    steps = checkpoint_step(checkpoint) if checkpoint else None
    training = [
        f"- base model: `{base or hp['backbone']}`",
        f"- head: `{head}` ({read})" + (f", pooled at `{settings['pooling']}`" if settings.get("pooling") else ""),
        f"- loss: `{loss}`" + (f" with {hp['loss_params']}" if hp.get("loss_params") else ""),
        f"- LoRA: {lora_text}",
        f"- optimiser: AdamW, lr {hp.get('lr')}, weight decay {hp.get('weight_decay')}, cosine schedule, "
        f"{hp.get('warmup_ratio')} warm-up; weights in {hp.get('dtype')}",
    ]
    if data.get("data"):
        training.append(f"- training data: `{data['data']}`" + (f" (validation: `{data['val_data']}`)" if data.get("val_data")
                        else f" ({data.get('val_fraction')} held out for validation)" if data.get("val_fraction") else ""))
    if steps is not None or at is not None:
        steps = steps if steps is not None else at
        limits = ", ".join(f"{k} {trainer[k]}" for k in ("max_epochs", "max_steps") if trainer.get(k) not in (None, -1))
        training.append(f"- steps: {steps} (the exported checkpoint)" + (f"; run limits: {limits}" if limits else ""))
    if settings["prompt"].get("max_length"):
        training.append(f"- prompts cut to {settings['prompt']['max_length']} tokens in training (the middle of the "
                        "longest free-text field is replaced by ` [...] `); keep prompts within it for the same scores")
    body = [
        f"# {repo.rsplit('/', 1)[-1]}", "",
        f"An LLM judge trained with phudge-lightning after the PHUDGE paper: it grades a response "
        f"to an instruction on a score scale{' in one forward pass' if head != 'causal' else ''}, optionally against a "
        "rubric and a reference answer. It is a plain transformers model: no code of phudge-lightning is needed to run it.",
        "", "## Training", "", *training, "", "## Evaluation", "", figures_section(figures, at, results or []),
        "## Prompt", "",
        "The judge reads the prompt it was trained on, built from `prompt_template.jinja` (variables `instruction`, "
        "`response`, and, each optional, `rubric` (text or `{criteria, score1_description .. score5_description}`), "
        "`reference_answer`, `context`). To build the text: " + how_to_build(settings["prompt"]) + "; tokenise it "
        + ("without adding special tokens again (the chat template wrote them)." if settings["prompt"]["use_chat_template"]
           else "with the tokenizer's special tokens."),
        "`phudge.json` says how the judge was trained and how its score is read.", "",
        "## Usage", "", "```python", snippet(repo, settings).rstrip(), "```", "",
    ]
    if head != "causal":
        body += [
            "With `pipeline(\"text-classification\", model=folder, function_to_apply=\"none\", top_k=None)`, pass the same "
            f"`text` (and `add_special_tokens={not settings['prompt']['use_chat_template']}`): the scores it returns are "
            "the logits above.", "",
            "Serving engines that load sequence-classification models serve it as it is (commands not run "
            "where this card was written; send the text built above, or its token ids):", "", "```bash",
            f"vllm serve {repo} --runner pooling --convert classify --pooler-config '{{\"use_activation\": false}}'"
            "   # POST /classify: raw logits",
        ]
        if settings.get("pooling") == "pooler":  # TEI serves BERT-family classifiers
            body.append(f"text-embeddings-router --model-id {repo} --port 8080   # POST /predict with \"raw_scores\": true")
        body += [
            "```", "",
        ]
    body += ["## Licence", "",
             f"`{license}`" + (f", the licence of the base model `{base}`, whose weights these derive from." if base and base in LICENSES
                              else ": state the licence of the base model's weights, which these derive from."), ""]
    return "\n".join(front + body)
