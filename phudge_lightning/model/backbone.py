"""The backbone: a Hugging Face model, optionally wrapped in LoRA, and the pooling of its states."""

from __future__ import annotations

import logging

import torch
from torch import nn

from datamodules.backbones import is_encoder
from phudge_lightning.model.gguf import resolve_backbone

log = logging.getLogger(__name__)

# LoRA targets per architecture: every projection of attention and MLP, as the paper adapts them.
LORA_TARGETS = {
    "phi3": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"],
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "mistral": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "gemma": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "bert": ["query", "key", "value", "dense"],
}
POOLINGS = ("auto", "last", "first", "mean", "pooler")


def lora_targets(model_type: str) -> list[str] | str:
    """The default LoRA target modules for ``model_type``; peft's ``all-linear`` otherwise."""
    return LORA_TARGETS.get(model_type, "all-linear")


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, how: str) -> torch.Tensor:
    """(N, T, H) states -> (N, H).

    ``last``: the last non-padding token of each row, found from the mask, so the result is
    the same under left and right padding; ``first``: position 0 (BERT's [CLS]); ``mean``: the
    mean over non-padding tokens. (``pooler``, BERT's [CLS] through its pooler's dense + tanh,
    is the backbone's own ``pooler_output``: see ``pooled``.)
    """
    if how == "last":
        positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
        last = (positions * attention_mask).argmax(-1)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    if how == "first":
        return hidden[:, 0]
    if how == "mean":
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1)
    raise ValueError(f"pooling must be one of {POOLINGS[1:]}, got {how!r}")


def pooled(output, attention_mask: torch.Tensor, how: str) -> torch.Tensor:
    """The head's input from a backbone output: ``pooler`` takes the backbone's own pooler output
    (BERT: tanh(W h_[CLS] + b), exactly what ``BertForSequenceClassification`` feeds its
    classifier), the others ``pool`` the last hidden states."""
    if how == "pooler":
        return output.pooler_output
    return pool(output.last_hidden_state, attention_mask, how)


def load_backbone(name: str, *, causal: bool, dtype: str = "float32", attn_implementation: str | None = "sdpa") -> nn.Module:
    """``AutoModelForCausalLM`` for the causal head, the bare ``AutoModel`` (no LM head) otherwise."""
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    path = resolve_backbone(name)
    config = AutoConfig.from_pretrained(path)
    kwargs = {"dtype": getattr(torch, dtype)}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    cls = AutoModelForCausalLM if causal else AutoModel
    try:
        return cls.from_pretrained(path, config=config, **kwargs)
    except (ValueError, ImportError) as e:  # an architecture without SDPA support
        if "attn_implementation" not in kwargs:
            raise
        log.warning("%s: %s; loading with the default attention", name, e)
        kwargs.pop("attn_implementation")
        return cls.from_pretrained(path, config=config, **kwargs)


def layer_list_name(model: nn.Module) -> str | None:
    """The attribute name of the ``nn.ModuleList`` holding the transformer blocks (``layers``,
    ``layer``, ``h``...): the longest module list in the model."""
    lists = [(len(m), name.rsplit(".", 1)[-1]) for name, m in model.named_modules() if isinstance(m, nn.ModuleList) and name]
    return max(lists)[1] if lists else None


# Encoders whose *ForSequenceClassification feeds its classifier the pooler's output ([CLS] through
# dense + tanh): pooled so, such a judge is that class exactly (``phudge export --format hf``).
POOLER_CLASSIFIERS = ("bert",)


def default_pooling(config) -> str:
    """What ``auto`` pools: as the architecture's standard sequence classifier reads, so the judge
    exports as it is: ``last`` for decoders, ``pooler`` for BERT, ``first`` for other encoders."""
    if not is_encoder(config):
        return "last"
    return "pooler" if config.model_type in POOLER_CLASSIFIERS else "first"


def apply_lora(model: nn.Module, lora: dict | None, full_finetune: bool) -> nn.Module:
    """LoRA through peft (``lora`` holds r, alpha, dropout, target_modules), full fine-tuning,
    or, with ``lora=None``, a frozen backbone (only the head trains: the paper's leakage test)."""
    if full_finetune:
        return model
    if lora is None:
        model.requires_grad_(False)
        return model
    from peft import LoraConfig, get_peft_model

    settings = dict(lora)
    targets = settings.pop("target_modules", None) or lora_targets(model.config.model_type)
    if settings.get("layers_to_transform") is not None and not settings.get("layers_pattern"):
        # peft finds a layer's index only after a dotted prefix ("model.layers.3."); a bare
        # AutoModel names its blocks "layers.3." and would match nothing, so name the list.
        settings["layers_pattern"] = layer_list_name(model)
    config = LoraConfig(
        r=settings.pop("r", 16), lora_alpha=settings.pop("alpha", 32), lora_dropout=settings.pop("dropout", 0.05),
        target_modules=targets, bias="none", **settings,
    )
    return get_peft_model(model, config)


def scale_lora(model: nn.Module, scale: float) -> None:
    """WiSE-FT for a LoRA judge (Wortsman et al., 2022, "Robust fine-tuning of zero-shot models"):
    every update (alpha/r) B A becomes scale * (alpha/r) B A, in place, by scaling B, so that the
    weights W0 + scale * (alpha/r) B A lie between the pretrained backbone (0) and the trained one
    (1). Interpolating keeps more of the pretrained model's behaviour where the fine-tuning labels
    and the graded data differ. ``model``: a judge, or an ensemble (each member's); a scale of 1
    changes nothing. Each judge's ``lora_scale`` becomes its old one times ``scale`` (scaling twice
    multiplies), which its exports record. ``ValueError`` for a judge with no LoRA adapter: merged
    or fully fine-tuned weights cannot be interpolated back."""
    if scale == 1.0:
        return
    for one in getattr(model, "members", [model]):
        weights = [p for name, p in one.named_parameters() if ".lora_B." in name]
        if not weights:
            raise ValueError("lora_scale needs a judge with a LoRA adapter; this backbone has none (merged, or trained without LoRA)")
        with torch.no_grad():
            for p in weights:
                p.mul_(scale)
        one.lora_scale = getattr(one, "lora_scale", 1.0) * scale
