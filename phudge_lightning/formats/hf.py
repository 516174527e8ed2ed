"""``hf``: the judge as a standard ``transformers`` folder (``phudge export --format hf``), or the
hub id of one; read as a ``TransformersJudge`` with plain transformers.

Regression and classification judges become an ``AutoModelForSequenceClassification``: the
backbone with LoRA merged into its weights, and the head's linear layer as the model's own
classification layer (``num_labels`` 1, or 5 with ``id2label`` 1..5). The causal judge becomes
its merged ``AutoModelForCausalLM``. Tokenizer and chat template go along, with
``prompt_template.jinja`` (the judge's prompt, in any of its layouts) and ``phudge.json`` (how
it was trained and how a score is read from the logits).

The standard classes hold a head exactly only in these forms, checked by ``check_exportable``:

- decoders (``GenericForSequenceClassification``: Llama, Phi-3, Mistral, Qwen2, ...): the
  ``score`` layer reads the last non-pad token and has **no bias**, so the judge must pool
  ``last`` and its head have no bias (``head_params: {bias: false}``), a folded one
  (``{bias: folded}``, the decoder recipes' setting: written as W + b u^T, see ``heads.folded``)
  or a zero one; a
  classification head whose five biases are equal exports too (softmax ignores a shared shift:
  the logits move by it, probabilities and score do not);
- BERT (``BertForSequenceClassification``): the classifier (with bias) reads [CLS] through
  BERT's pooler, dense + tanh, so the judge must pool ``pooler``;
- the causal head, whatever its settings.

Anything else (an encoder pooled ``last``, ``first`` or ``mean``, a biased decoder regression
head, a head of a plugin) would change the scores and is refused with the reason.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
from torch import nn

from heads.folded import FoldedBias
from phudge_lightning.formats import prompt_template
from phudge_lightning.formats.registry import CheckpointError, Format, register
from phudge_lightning.hub_reach import is_hub_id, missing_judge
from phudge_lightning.io import atomic_write_json
from phudge_lightning.model.backbone import POOLER_CLASSIFIERS
from phudge_lightning.model.inference import prepare
from phudge_lightning.model.transformers_judge import TransformersJudge

SETTINGS = "phudge.json"
FORMAT = "phudge-hf/1"
EXACT_HEADS = ("regression", "classification", "causal")


class NotExportable(ValueError):
    """The standard class would change this judge's scores; the message says why, in one line."""


def _head_name(module) -> str:
    return module.hparams.head.rpartition(".")[2]


def _builtin_head(module) -> bool:
    import heads

    name = _head_name(module)
    return name in EXACT_HEADS and type(module.head) is heads.get_head(name)


def label_settings(module) -> dict:
    """``num_labels``, ``id2label``, ``label2id`` and ``problem_type`` of a judge's head: one
    label for regression, one per integer score of the range for classification."""
    if _head_name(module) == "regression":
        return {"num_labels": 1, "id2label": {0: "score"}, "label2id": {"score": 0}, "problem_type": "regression"}
    labels = {i: f"{v:g}" for i, v in enumerate(module.head.score_values.tolist())}
    return {"num_labels": len(labels), "id2label": labels, "label2id": {v: k for k, v in labels.items()},
            "problem_type": "single_label_classification"}


def _classification_class(config):
    from transformers import AutoModelForSequenceClassification
    from transformers.modeling_layers import GenericForSequenceClassification

    try:
        cls = AutoModelForSequenceClassification._model_mapping[type(config)]
    except KeyError:
        raise NotExportable(f"transformers has no sequence-classification class for model type {config.model_type!r}")
    pooling = "last" if issubclass(cls, GenericForSequenceClassification) else (
        "pooler" if config.model_type in POOLER_CLASSIFIERS else None)
    if pooling is None:
        raise NotExportable(f"{cls.__name__} pools in a way no judge setting matches (only decoders read at the last "
                            f"token and BERT's pooler are known)")
    return cls, pooling


def check_exportable(module) -> None:
    """Raise ``NotExportable`` when the standard class cannot compute this judge's scores."""
    layout = module.prompt_settings.get("layout", "prometheus")
    if layout not in prompt_template.LAYOUTS:
        raise NotExportable(f"prompt_template.jinja writes the {' or '.join(prompt_template.LAYOUTS)} prompt; this judge "
                            f"reads the {layout!r} layout (export it with --format judge)")
    check_head(module)


def check_head(module) -> None:
    """``NotExportable`` unless the standard class computes this judge's head on its backbone."""
    head = _head_name(module)
    if not _builtin_head(module):
        raise NotExportable(f"head {module.hparams.head!r} has no standard transformers form (only {EXACT_HEADS} do)")
    if head == "causal":
        return
    _, pooling = _classification_class(module.config)
    if module.pooling != pooling:
        how = {"last": "at the last non-pad token", "pooler": "at [CLS] through BERT's pooler (dense + tanh)"}[pooling]
        raise NotExportable(f"the standard {module.config.model_type} classifier reads {how}, but this judge pools "
                            f"{module.pooling!r}: train with --model.pooling {pooling} to export it")
    if pooling == "last":
        _classifier_weights(module, with_bias=False)  # raises for a bias the layer cannot hold


def _classifier_weights(module, with_bias: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The head's (weight, bias) as the classification layer takes them; a layer without bias
    takes a zero bias exactly, and a classification head's equal biases (softmax is shift-invariant)."""
    proj = module.head.proj
    if isinstance(proj, FoldedBias):  # y = (W + b u^T) h: a bias-free layer holds it exactly
        weight = proj.folded_weight()
        return weight, (torch.zeros(weight.shape[0]) if with_bias else None)
    weight = proj.weight.detach().float().clone()
    bias = None if proj.bias is None else proj.bias.detach().float().clone()
    if with_bias:
        return weight, torch.zeros(weight.shape[0]) if bias is None else bias
    if bias is None or not bias.any():
        return weight, None
    if _head_name(module) == "classification" and bool((bias == bias[0]).all()):
        return weight, None
    kind = "a bias of " + ", ".join(f"{b:.4g}" for b in bias.tolist())
    raise NotExportable(f"the decoder's score layer has no bias and this {_head_name(module)} head has {kind}: "
                        "train with --model.head_params '{bias: folded}' to export it")


def sequence_classifier(module) -> nn.Module:
    """The judge as an ``AutoModelForSequenceClassification``, sharing the (merged) backbone's
    weights: built on the meta device, then given the backbone and the head's layer."""
    check_exportable(module)
    return assemble(module, prepare(module).backbone)  # LoRA merged: the standard classes hold plain weights


def assemble(module, base: nn.Module) -> nn.Module:
    """``base`` (the judge's backbone, as a plain transformers model) under the judge's head, as
    its ``AutoModelForSequenceClassification``, sharing ``base``'s weights."""
    check_head(module)
    config = copy.deepcopy(base.config)
    for key, value in label_settings(module).items():
        setattr(config, key, value)
    config.pad_token_id = module.tokenizer.pad_token_id
    cls, pooling = _classification_class(config)
    config.architectures = [cls.__name__]
    with torch.device("meta"):
        model = cls(config)
    layers = [(n, m) for n, m in model.named_children() if isinstance(m, nn.Linear)]
    if len(layers) != 1 or len([n for n, m in model.named_children() if not isinstance(m, nn.Dropout)]) != 2:
        raise NotExportable(f"{cls.__name__} is not a base model and one linear layer: {[n for n, _ in model.named_children()]}")
    name, layer = layers[0]
    weight, bias = _classifier_weights(module, with_bias=layer.bias is not None)
    dtype = next(base.parameters()).dtype
    classifier = nn.Linear(layer.in_features, layer.out_features, bias=bias is not None, dtype=dtype)
    with torch.no_grad():
        classifier.weight.copy_(weight)
        if bias is not None:
            classifier.bias.copy_(bias)
    setattr(model, model.base_model_prefix, base)
    setattr(model, name, classifier)
    model.config.dtype = dtype
    left = [n for n, t in (*model.named_parameters(), *model.named_buffers()) if t.is_meta]
    if left:
        raise RuntimeError(f"{cls.__name__}: {left[:3]} were not filled from the judge")
    return model.eval()


def settings(module) -> dict:
    """``phudge.json``: how the judge was trained, how to build its prompt and read its score."""
    head = _head_name(module)
    layout = module.prompt_settings.get("layout", "prometheus")
    chat = bool(module.prompt_settings.get("use_chat_template", True) and layout != "phudge"
                and getattr(module.tokenizer, "chat_template", None))
    read = {"regression": "score = logits[0]", "classification": "score = sum_k s_k softmax(logits)_k, s_k = float(id2label[k])",
            "causal": "generate; score = the number after the last [RESULT]"}[head]
    return {
        "format": FORMAT,
        "head": head,
        "pooling": None if head == "causal" else module.pooling,
        "score": read,
        "prompt": {
            "template": prompt_template.FILE,
            "use_chat_template": chat,
            "add_special_tokens": not chat,  # a chat template already writes the special tokens
            "max_length": module.prompt_settings.get("max_length"),
            "layout": layout,
            # The conversation layout in a chat: the template is the user's turn, the response the
            # assistant's, rendered without a generation prompt and with trailing whitespace stripped.
            **({"response_turn": "assistant"} if layout == "conversation" and chat else {}),
            # False where the judge never read the section in training: a caller leaves it out.
            **{key: module.prompt_settings[key] for key in ("reads_rubric", "reads_reference") if key in module.prompt_settings},
        },
        "max_new_tokens": module.hparams.max_new_tokens,
        "hparams": {k: v for k, v in dict(module.hparams).items() if k != "plugins"},
        **({"lora_scale": module.lora_scale} if getattr(module, "lora_scale", 1.0) != 1.0 else {}),
    }


def export_hf(module, output: str | Path) -> Path:
    """Write ``module`` to ``output`` as a transformers folder (see the module docstring).

    Raises ``NotExportable`` before writing anything when the standard class cannot hold it."""
    output = Path(output)
    head = _head_name(module)
    check_exportable(module)
    model = prepare(module).backbone if head == "causal" else sequence_classifier(module)
    _check_pad(module)
    output.mkdir(parents=True, exist_ok=True)
    model.config.pad_token_id = module.tokenizer.pad_token_id
    model.save_pretrained(output)
    module.tokenizer.save_pretrained(output)
    written = settings(module)
    prompt_template.write(output, written["prompt"], module.score_range)
    atomic_write_json(output / SETTINGS, written)
    return output


def _check_pad(module) -> None:
    """A decoder's class finds the last token as the last one that is not the pad token: a prompt
    ending in the pad token would be read one token early."""
    from datamodules.prompt import PromptEncoder
    from datamodules.records import validate_record

    if _head_name(module) == "causal" or module.pooling != "last":
        return
    encoder = PromptEncoder(module.tokenizer, use_chat_template=module.prompt_settings.get("use_chat_template", True))
    ids = encoder.encode(validate_record({"instruction": "a", "response": "b"}, require_score=False)).input_ids
    if ids[-1] == module.tokenizer.pad_token_id:
        raise NotExportable(f"every prompt ends in the pad token ({module.tokenizer.pad_token!r}), which the standard "
                            "class skips when it looks for the last token")


# -- loading back --------------------------------------------------------------------------------

def is_hf_judge(path: str | Path) -> bool:
    """A folder written by ``export_hf``: ``config.json`` beside ``phudge.json``."""
    path = Path(path)
    return path.is_dir() and (path / "config.json").is_file() and (path / SETTINGS).is_file()


def download(repo_id: str) -> Path:
    """The folder of hub model ``repo_id``: downloaded, or the cached copy when the hub cannot be
    reached; ``CheckpointError`` (one line) when there is neither."""
    from huggingface_hub import snapshot_download

    from phudge_lightning.hub_reach import not_found, unreachable

    offline = unreachable()
    try:
        return Path(snapshot_download(repo_id, local_files_only=offline is not None))
    except Exception as e:  # not cached, unknown repository, no access: all mean "not found" here
        if offline is not None:
            raise CheckpointError(not_found(repo_id, offline)) from e
        raise CheckpointError(f"no checkpoint or exported judge at {repo_id}, and no hub model of that id "
                              f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from e


def load_hf_judge(source: str | Path, dtype: str | None = None) -> TransformersJudge:
    """A judge from a folder written by ``phudge export --format hf``, or a hub id of one (from the
    local cache alone when the hub cannot be reached: ``hub_reach.unreachable``). ``CheckpointError``,
    one line, for a hub id that is neither cached nor on a reachable hub."""
    folder = Path(source)
    if not folder.exists() and is_hub_id(str(source)):
        folder = download(str(source))
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
    if not is_hf_judge(folder):
        raise FileNotFoundError(f"{source} is not a judge exported with --format hf: no config.json and {SETTINGS}")
    config = json.loads((folder / SETTINGS).read_text())
    if config.get("format") != FORMAT:
        raise ValueError(f"{folder / SETTINGS}: field 'format' is {config.get('format')!r}, expected {FORMAT!r}")
    cls = AutoModelForCausalLM if config["head"] == "causal" else AutoModelForSequenceClassification
    kwargs = {"dtype": getattr(torch, dtype)} if dtype else {}
    model = cls.from_pretrained(folder, **kwargs).eval()
    return TransformersJudge(model, AutoTokenizer.from_pretrained(folder), config).eval()


@register
class TransformersFolder(Format):
    name = "hf"
    looks_like = "a transformers folder from phudge export --format hf (or its hub id)"

    @classmethod
    def holds(cls, path: Path) -> bool:
        return is_hf_judge(path) or is_hub_id(str(path))

    @classmethod
    def check(cls, path: Path) -> None:
        # A hub id neither cached nor on a reachable hub is refused here, before any loading.
        missing = missing_judge(path) if not path.exists() else None
        if missing:
            raise CheckpointError(missing)

    @classmethod
    def read(cls, path: Path) -> TransformersJudge:
        return load_hf_judge(path)

    @classmethod
    def write(cls, module, path: Path) -> Path:
        return export_hf(module, path)
