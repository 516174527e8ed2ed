"""The ``peft`` format: a judge as a PEFT adapter of a few MB (``phudge export --format peft``),
and any sequence-classification adapter (ours, or one saved as the PHUDGE authors saved theirs)
read as a judge wherever a checkpoint is accepted: a folder, or the hub id of one.

The folder is what peft's ``save_pretrained`` writes for a ``SEQ_CLS`` task: ``adapter_config.json``
(naming the base model) and ``adapter_model.safetensors`` (the LoRA weights, and the head as the
classifier's own layer through ``modules_to_save``: ``score`` for decoders, ``classifier`` for
BERT), beside ``phudge.json`` (how to build the prompt and read a score, as ``--format hf``
writes it), the tokenizer, ``prompt_template.jinja`` (the judge's prompt in its layout), and ``README.md``.
Plain peft and transformers score with it:

    base = AutoModelForSequenceClassification.from_pretrained(BASE, num_labels=1)   # 5: classification
    model = PeftModel.from_pretrained(base, "judge-peft/")

The same forms as ``--format hf`` export (``hf.check_head``: a decoder pooled at its last token
with a bias-free or folded head, BERT through its pooler), with a LoRA adapter to write.

An adapter without ``phudge.json`` (the authors' released judges) is read with the authors'
prompt (layout ``phudge``); one label is a regression head, several a classification head over
the scores 1..n.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

# (hf is imported where used: this format registers before hf's, which takes any hub id)
from phudge_lightning.formats import prompt_template
from phudge_lightning.formats.registry import CheckpointError, Format, register
from phudge_lightning.hub_reach import is_hub_id
from phudge_lightning.io import atomic_write_json
from phudge_lightning.model.transformers_judge import TransformersJudge

CONFIG = "adapter_config.json"
WEIGHTS = "adapter_model.safetensors"
SETTINGS = "phudge.json"
FORMAT = "phudge-peft/1"
TASK = "SEQ_CLS"


def export_peft(module, output: str | Path, *, base_model: str | None = None) -> Path:
    """Write ``module``'s LoRA and head to ``output`` as a peft adapter (see the module docstring).

    ``base_model``: the name written in ``adapter_config.json`` (default: the backbone's hub id,
    or the name it was trained from). ``NotExportable`` before writing anything when the
    classifier cannot hold the judge. The module's backbone is unloaded (LoRA removed) on the way."""
    from phudge_lightning.formats import hf

    if module.hparams.full_finetune:
        raise hf.NotExportable("a fully fine-tuned backbone is not an adapter of its base model: use --format hf")
    name = base_model or hub_name(module.hparams.backbone)
    if hf._head_name(module) == "causal":
        adapter = causal_adapter(module, name)
    else:
        adapter = classifier_adapter(module, name)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    adapter.save_pretrained(output)
    module.tokenizer.save_pretrained(output)
    settings = {**hf.settings(module), "format": FORMAT, "base_model": name}
    prompt_template.write(output, settings["prompt"], module.score_range)
    atomic_write_json(output / SETTINGS, settings)
    (output / "README.md").write_text(card(settings, adapter.base_model.model.config))
    return output


def hub_name(backbone: str) -> str:
    """The base model's name for ``adapter_config.json``: an embedded backbone's hub id (where the
    same weights live), else the name the judge was trained from."""
    from datamodules.backbones import EMBEDDED

    return EMBEDDED[backbone].hub_id if backbone in EMBEDDED else backbone


def causal_adapter(module, name: str):
    """The causal judge's own peft model (LoRA on the language model), as a ``CAUSAL_LM`` adapter."""
    from phudge_lightning.formats import hf

    if not hasattr(module.backbone, "peft_config"):
        raise hf.NotExportable("this causal judge has no LoRA adapter: it is its base model (use --format hf)")
    config = module.backbone.peft_config["default"]
    config.task_type, config.inference_mode, config.base_model_name_or_path = "CAUSAL_LM", True, name
    return module.backbone


def classifier_adapter(module, name: str):
    """The judge as its base model's sequence classifier with LoRA and the head (``modules_to_save``)
    in a ``SEQ_CLS`` peft model; a frozen backbone gets a LoRA of rank 1 that changes nothing
    (B = 0), for peft needs one."""
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict

    from phudge_lightning.formats import hf
    from phudge_lightning.model.backbone import lora_targets

    hf.check_head(module)
    hf._check_pad(module)
    if hasattr(module.backbone, "peft_config"):
        lora = get_peft_model_state_dict(module.backbone)
        config = copy.deepcopy(module.backbone.peft_config["default"])
        base = module.backbone.unload()  # the base model as it was before LoRA, shared with the judge
    else:
        lora, base = {}, module.backbone
        config = LoraConfig(r=1, lora_alpha=1, target_modules=lora_targets(base.config.model_type))
    model = hf.assemble(module, base)
    layer = next(n for n, m in model.named_children() if isinstance(m, hf.nn.Linear))
    config.task_type, config.modules_to_save, config.inference_mode = TASK, [layer], True
    config.base_model_name_or_path = name
    head = {f"{layer}.{k}": v.clone() for k, v in getattr(model, layer).state_dict().items()}
    adapter = get_peft_model(model, config)  # (wraps the classifier layer: its weights were taken before)
    # get_peft_model names the base by the model's own path (an embedded backbone's folder here):
    # the adapter must name its hub id, where any machine finds the same weights.
    adapter.peft_config["default"].base_model_name_or_path = name
    # Our LoRA sat on the bare backbone; in the classifier that backbone is one level down.
    prefix = "base_model.model."
    state = {prefix + model.base_model_prefix + "." + k[len(prefix):]: v for k, v in lora.items()}
    state.update({prefix + k: v for k, v in head.items()})
    result = set_peft_model_state_dict(adapter, state)
    if result.unexpected_keys:
        raise RuntimeError(f"the adapter did not take {result.unexpected_keys[:3]}")
    return adapter


def card(settings: dict, config) -> str:
    """A short model card: the base model, what the adapter is, and how to score with it."""
    base, head = settings["base_model"], settings["head"]
    labels = config.num_labels
    cls, loaded = (("AutoModelForCausalLM", f'"{base}"') if head == "causal" else
                   ("AutoModelForSequenceClassification", f'"{base}", num_labels={labels}'))
    prompt = prompt_template.how_to_build(settings["prompt"])
    return f"""---
base_model: {base}
library_name: peft
pipeline_tag: text-classification
tags: [llm-judge, phudge, lora]
---

# A PHUDGE judge as a LoRA adapter

A {head} judge of answers on a 1-5 scale: LoRA on `{base}`{"" if head == "causal" else f" and its classification layer (`num_labels` {labels})"},
trained with phudge-lightning. To read a score: {settings['score']}.

To score: {prompt}; tokenise it with `add_special_tokens={settings['prompt']['add_special_tokens']}`
and run

```python
from peft import PeftModel
from transformers import {cls}, AutoTokenizer

base = {cls}.from_pretrained({loaded})
model = PeftModel.from_pretrained(base, "THIS_FOLDER").eval()
tokenizer = AutoTokenizer.from_pretrained("THIS_FOLDER")
```

or grade with `phudge grade --checkpoint THIS_FOLDER` (`phudge.json` holds the prompt settings).
"""


# -- reading --------------------------------------------------------------------------------------

def base_of(folder: str | Path) -> str:
    """The base model an adapter folder names."""
    return json.loads((Path(folder) / CONFIG).read_text()).get("base_model_name_or_path", "?")


def is_peft_adapter(path: str | Path) -> bool:
    """A folder holding ``adapter_config.json`` and its weights."""
    path = Path(path)
    return path.is_dir() and (path / CONFIG).is_file()


def classifier_labels(folder: Path) -> int:
    """How many labels the adapter's classifier layer has (its ``modules_to_save`` weight's rows)."""
    from safetensors import safe_open

    files = [folder / WEIGHTS] if (folder / WEIGHTS).is_file() else []
    if not files:
        raise FileNotFoundError(f"{folder} holds no {WEIGHTS}")
    with safe_open(str(files[0]), "pt") as f:
        rows = [f.get_slice(k).get_shape()[0] for k in f.keys() if k.endswith((".score.weight", ".classifier.weight"))]
    if not rows:
        raise ValueError(f"{folder / WEIGHTS}: no classifier layer (score or classifier) among the adapter's weights: "
                         "was it saved with task_type SEQ_CLS?")
    return rows[0]


def load_peft_judge(source: str | Path, dtype: str | None = None) -> TransformersJudge:
    """A judge from a peft sequence-classification adapter folder (or the hub id of one): the
    base model it names, as ``AutoModelForSequenceClassification``, with the adapter applied."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from datamodules.backbones import EMBEDDED
    from phudge_lightning.formats import hf
    from phudge_lightning.model.gguf import resolve_backbone

    folder = Path(source)
    if not folder.exists() and is_hub_id(str(source)):
        folder = hf.download(str(source))
    config = json.loads((folder / CONFIG).read_text())
    ours = json.loads((folder / SETTINGS).read_text()) if (folder / SETTINGS).is_file() else None
    causal = config.get("task_type") == "CAUSAL_LM" and ours is not None and ours.get("head") == "causal"
    if config.get("task_type") != TASK and not causal:
        raise ValueError(f"{folder / CONFIG}: field 'task_type' is {config.get('task_type')!r}; a judge is a "
                         f"{TASK!r} adapter (a sequence classifier), or a CAUSAL_LM one with our {SETTINGS}")
    base = config.get("base_model_name_or_path")
    if not base:
        raise ValueError(f"{folder / CONFIG}: field 'base_model_name_or_path' is missing")
    labels = None if causal else classifier_labels(folder)
    head = ours["head"] if ours else ("regression" if labels == 1 else "classification")
    score_range = (ours or {}).get("hparams", {}).get("score_range") or ([1, 5] if labels in (None, 1) else [1, labels])
    # A base this project embeds is read from the package (offline), not fetched by its hub id.
    path = resolve_backbone(next((name for name, e in EMBEDDED.items() if e.hub_id == base), base))
    tokenizer = AutoTokenizer.from_pretrained(folder if (folder / "tokenizer_config.json").is_file() else path)
    kwargs = {"dtype": getattr(torch, dtype)} if dtype else {}
    if causal:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=labels, **kwargs)
    if tokenizer.pad_token is None:  # as the authors' script: pad with the end-of-sequence token
        tokenizer.pad_token = tokenizer.eos_token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    model = PeftModel.from_pretrained(model, folder).eval()
    settings = ours or {"head": head, "max_new_tokens": 0,
                        "prompt": {"layout": "phudge", "use_chat_template": False, "max_length": None}}
    settings = {**settings, "hparams": {**settings.get("hparams", {}), "score_range": score_range}}
    return TransformersJudge(model, tokenizer, settings).eval()


def on_hub(repo_id: str) -> bool:
    """Whether hub repository ``repo_id`` is an adapter: its cached copy holds ``adapter_config.json``,
    or, where the hub can be reached and nothing is cached, the hub says it does."""
    from huggingface_hub import file_exists, try_to_load_from_cache

    from phudge_lightning.hub_reach import unreachable

    if isinstance(try_to_load_from_cache(repo_id, CONFIG), str):
        return True
    if unreachable() is not None:
        return False
    try:
        return file_exists(repo_id, CONFIG)
    except Exception:  # no such repository, no access: not an adapter here (the hf format says why)
        return False


@register
class PeftAdapter(Format):
    name = "peft"
    looks_like = "a peft adapter folder (adapter_config.json: a base model and task SEQ_CLS; or its hub id)"

    @classmethod
    def holds(cls, path: Path) -> bool:
        return is_peft_adapter(path) or (is_hub_id(str(path)) and on_hub(str(path)))

    @classmethod
    def check(cls, path: Path) -> None:
        if not path.exists():
            return  # a hub id: read (and refused, one line) when downloaded
        try:
            config = json.loads((path / CONFIG).read_text())
        except (OSError, ValueError) as e:
            raise CheckpointError(f"{path / CONFIG} cannot be read: {type(e).__name__}: {e}") from e
        if not config.get("base_model_name_or_path"):
            raise CheckpointError(f"{path / CONFIG}: field 'base_model_name_or_path' is missing: the adapter names no base model")
        if not (path / WEIGHTS).is_file():
            raise CheckpointError(f"{path} holds {CONFIG} but no {WEIGHTS}")

    @classmethod
    def read(cls, path: Path) -> TransformersJudge:
        try:
            return load_peft_judge(path)
        except ValueError as e:  # a foreign adapter (another task, no classifier): one line
            raise CheckpointError(str(e)) from e

    @classmethod
    def write(cls, module, path: Path, **options) -> Path:
        return export_peft(module, path, **options)
