"""Backbone loading, pooling, and LoRA."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from datamodules.backbones import EMBEDDED, backbone_files, is_encoder
from datamodules.tokenizer import load_tokenizer
from phudge_lightning.model.gguf import resolve_backbone
from phudge_lightning.model.backbone import LORA_TARGETS, apply_lora, default_pooling, load_backbone, lora_targets, pool
from tiny import tiny_model

SENTENCES = ["Why does bread need salt?", "A loop repeats a block of code for each value in a list, again and again.",
             "Hi.", "The steak should rest for five minutes so the juice stays in the meat."]


@pytest.fixture(scope="module")
def llama(tiny_llama_dir):
    return load_backbone(str(tiny_llama_dir), causal=False).eval()


@pytest.fixture(scope="module")
def tokenizer(tiny_llama_dir):
    return load_tokenizer(str(tiny_llama_dir))


def _encode(tokenizer, side):
    tokenizer.padding_side = side
    try:
        return tokenizer(SENTENCES, padding=True, return_tensors="pt")
    finally:
        tokenizer.padding_side = "left"


@torch.no_grad()
def _states(model, batch):
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state


def test_padding_is_really_different(tokenizer):
    left, right = _encode(tokenizer, "left"), _encode(tokenizer, "right")
    assert not torch.equal(left["input_ids"], right["input_ids"])
    assert (left["attention_mask"][:, 0] == 0).any() and (right["attention_mask"][:, -1] == 0).any()


@pytest.mark.parametrize("how", ["last", "mean"])
def test_pool_same_under_left_and_right_padding(llama, tokenizer, how):
    left, right = _encode(tokenizer, "left"), _encode(tokenizer, "right")
    pooled_left = pool(_states(llama, left), left["attention_mask"], how)
    pooled_right = pool(_states(llama, right), right["attention_mask"], how)
    assert pooled_left.shape == (len(SENTENCES), llama.config.hidden_size)
    assert torch.allclose(pooled_left, pooled_right, atol=1e-4), (pooled_left - pooled_right).abs().max()
    # ... and equal to each sentence run alone, without padding.
    for i, sentence in enumerate(SENTENCES):
        alone = tokenizer(sentence, return_tensors="pt")
        states = _states(llama, alone)[0]
        expected = states[-1] if how == "last" else states.mean(0)
        assert torch.allclose(pooled_left[i], expected, atol=1e-4)
    # The rows differ from each other: pooling did not pick one position for all.
    assert not torch.allclose(pooled_left[0], pooled_left[1], atol=1e-3)


def test_pool_last_picks_the_last_real_token():
    hidden = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)
    left = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0]])
    assert torch.equal(pool(hidden, left, "last"), hidden[[0, 1], [3, 3]])
    assert torch.equal(pool(hidden, right, "last"), hidden[[0, 1], [1, 2]])


def test_pool_first_and_mean():
    torch.manual_seed(0)
    hidden = torch.randn(3, 5, 4)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    assert torch.equal(pool(hidden, mask, "first"), hidden[:, 0])
    mean = pool(hidden, mask, "mean")
    for i, n in enumerate(mask.sum(1).tolist()):
        assert torch.allclose(mean[i], hidden[i, :n].mean(0))
    # Padding states do not leak into the mean.
    noisy = hidden.clone()
    noisy[mask == 0] = 1e6
    assert torch.allclose(pool(noisy, mask, "mean"), mean)
    with pytest.raises(ValueError, match="pooling must be one of"):
        pool(hidden, mask, "max")


def test_default_pooling_by_architecture(tiny_llama_dir, tiny_bert_dir):
    from transformers import AutoConfig

    llama, bert = AutoConfig.from_pretrained(tiny_llama_dir), AutoConfig.from_pretrained(tiny_bert_dir)
    assert (default_pooling(llama), default_pooling(bert)) == ("last", "pooler")  # as the standard classifiers read
    bert.model_type = "electra"  # an encoder whose classifier reads [CLS] through its own head, not a pooler
    assert default_pooling(bert) == "first"
    assert not is_encoder(llama) and is_encoder(bert)
    assert load_tokenizer(str(tiny_bert_dir)).padding_side == "right"


def test_load_backbone_causal_or_bare(tiny_llama_dir):
    causal = load_backbone(str(tiny_llama_dir), causal=True)
    bare = load_backbone(str(tiny_llama_dir), causal=False)
    assert hasattr(causal, "lm_head") and not hasattr(bare, "lm_head")
    # The bare model carries the saved weights, not a fresh random init.
    assert torch.equal(bare.embed_tokens.weight, causal.model.embed_tokens.weight)
    assert torch.equal(bare.layers[1].mlp.down_proj.weight, causal.model.layers[1].mlp.down_proj.weight)
    assert bare.dtype == torch.float32
    assert load_backbone(str(tiny_llama_dir), causal=False, dtype="bfloat16").dtype == torch.bfloat16


def _lora_leaves(model) -> set[str]:
    return {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if hasattr(module, "lora_A")}


@pytest.mark.parametrize("kind,expected", [
    ("phi3", {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"}),
    ("llama", {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}),
    ("bert", {"query", "key", "value", "dense"}),
])
def test_lora_default_targets(kind, expected):
    from peft import PeftModel

    model = tiny_model(kind)
    assert set(lora_targets(model.config.model_type)) == expected == set(LORA_TARGETS[kind])
    wrapped = apply_lora(model, {"r": 4, "alpha": 8, "dropout": 0.0}, full_finetune=False)
    assert isinstance(wrapped, PeftModel)
    config = wrapped.peft_config["default"]
    assert set(config.target_modules) == expected and config.r == 4 and config.lora_alpha == 8
    assert _lora_leaves(wrapped) == expected
    # Every layer is adapted, not just the first.
    adapted = [n for n, m in wrapped.named_modules() if hasattr(m, "lora_A")]
    layers = model.config.num_hidden_layers
    assert len(adapted) >= layers * len(expected if kind != "bert" else {"query", "key", "value"})
    trainable = {n for n, p in wrapped.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert any(not p.requires_grad for n, p in wrapped.named_parameters() if "lora_" not in n)


def test_lora_explicit_targets_and_fallback():
    model = apply_lora(tiny_model("llama"), {"r": 2, "target_modules": ["q_proj", "v_proj"]}, full_finetune=False)
    assert _lora_leaves(model) == {"q_proj", "v_proj"}
    assert lora_targets("some-new-arch") == "all-linear"


def test_lora_none_freezes_the_backbone():
    model = apply_lora(tiny_model("llama"), None, full_finetune=False)
    params = list(model.parameters())
    assert params and not any(p.requires_grad for p in params)
    assert not _lora_leaves(model)


def test_full_finetune_trains_everything():
    model = apply_lora(tiny_model("phi3"), {"r": 4}, full_finetune=True)
    assert all(p.requires_grad for p in model.parameters()) and not _lora_leaves(model)


@pytest.mark.parametrize("kind", ["llama", "phi3", "bert"])
def test_lora_layers_to_transform_on_a_bare_model(kind):
    # A bare AutoModel names its blocks "layers.1." with no dotted prefix, which peft's default
    # index pattern misses: only the listed layers must be adapted, and at least one is.
    model = tiny_model(kind)
    last = model.config.num_hidden_layers - 1
    wrapped = apply_lora(model, {"r": 2, "layers_to_transform": [last]}, full_finetune=False)
    adapted = [n for n, m in wrapped.named_modules() if hasattr(m, "lora_A")]
    assert adapted and all(f".{last}." in n for n in adapted)


def test_a_backbone_not_embedded_is_handed_on_as_it_is(tiny_llama_dir):
    assert backbone_files(str(tiny_llama_dir)) == (str(tiny_llama_dir), None)
    assert resolve_backbone(str(tiny_llama_dir)) == str(tiny_llama_dir)


@pytest.mark.embedded("smollm2-135m")
def test_a_gguf_backbone_is_read_from_its_gguf_until_converted_then_from_the_cache(tmp_path, monkeypatch):
    # The tokenizer's side (datamodules) reads the GGUF file as it is; only the model's side
    # (resolve_backbone) converts it, and not again once the cache holds it.
    monkeypatch.setenv("PHUDGE_CACHE", str(tmp_path))
    path, gguf_file = backbone_files("smollm2-135m")
    assert gguf_file == EMBEDDED["smollm2-135m"].gguf_file and (Path(path) / gguf_file).is_file()
    converted = tmp_path / "smollm2-135m"
    converted.mkdir()
    (converted / "config.json").write_text("{}")
    assert backbone_files("smollm2-135m") == (str(converted), None)
    assert resolve_backbone("smollm2-135m") == str(converted)


def test_auto_pooling_is_saved_resolved_and_an_older_auto_encoder_checkpoint_keeps_cls(tiny_bert_dir):
    """Checkpoints record what ``auto`` pooled; one that says ``auto`` was saved when an encoder's
    ``auto`` meant [CLS] (``first``), and is read so, with the scores it was trained to give."""
    from phudge_lightning.formats.registry import module_from_checkpoint
    from phudge_lightning.model.module import JudgeModule

    assert JudgeModule(backbone=str(tiny_bert_dir)).hparams["pooling"] == "pooler"
    torch.manual_seed(0)
    older = JudgeModule(backbone=str(tiny_bert_dir), pooling="first").eval()
    hparams = {**older.hparams, "pooling": "auto"}
    loaded = module_from_checkpoint({"hyper_parameters": hparams, "state_dict": older.state_dict()})
    ids = torch.tensor([[2, 40, 41, 3], [2, 50, 3, 0]])
    mask = (ids != 0).long()
    with torch.no_grad():
        assert loaded.pooling == loaded.hparams["pooling"] == "first"
        assert torch.allclose(loaded(ids, mask), older(ids, mask))
