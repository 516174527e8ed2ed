"""Tiny tokenizers and random models, built in-process: no download, no model hub.

- ``tiny_tokenizer()``: a byte-level BPE (about 500 tokens) trained with ``tokenizers`` on a
  small built-in corpus (the judge's own prompt boilerplate among it, so prompts stay short),
  wrapped as a ``PreTrainedTokenizerFast`` with ``<pad>``, ``<s>``, ``</s>`` and ``<unk>``;
  ``chat=True`` adds a small Jinja chat template (for decoders).
- ``tiny_model(kind, vocab_size)``: random Phi-3, Llama or BERT models, hidden 32, 2 layers.
- ``save_tiny_backbone(kind, path)``: model + tokenizer saved with ``save_pretrained``, so the
  folder can be passed as ``backbone=`` (unknown names are local folders or hub ids).
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from datamodules.prometheus import CONTEXT, FEEDBACK, INSTRUCTION, REFERENCE, RESPONSE, RUBRIC, TASK, task_description

KINDS = ("llama", "phi3", "bert")
SPECIALS = {"pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
VOCAB_SIZE = 500

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}{{ eos_token }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

WORDS = (
    "the a an of to and in is it that for on with as was by this be are from or at which not have has "
    "response answer question reference rubric score feedback instruction evaluate helpful correct clear "
    "steak rest juice cook minutes water boil heat oven bread flour sugar salt pepper garden plant tree "
    "python function list error value return loop class file data model train test judge grade good bad "
    "explain why how what when where who describe write summary short long detail example because however"
).split()


def corpus() -> list[str]:
    """A small training corpus: the prompt's fixed text, headers, digits and plain sentences."""
    lines = []
    for ref in (False, True):
        for rub in (False, True):
            for ctx in (False, True):
                lines.append(task_description(ref, rub, ctx))
    lines += [
        TASK, INSTRUCTION, RESPONSE, CONTEXT, REFERENCE, RUBRIC, f"{FEEDBACK} ", "Feedback: [RESULT] 1 2 3 4 5",
        "[criteria] Score 1: Score 2: Score 3: Score 4: Score 5:", "<|user|> <|assistant|> [...]",
        "0 1 2 3 4 5 6 7 8 9 10 100 3.5 2.25",
    ]
    # The fixed text weighs most, so that its merges are learnt and prompts stay well under 512.
    lines = lines * 20
    for i in range(60):
        lines.append(" ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(20)).capitalize() + ".")
    return lines


@functools.lru_cache(maxsize=None)
def _tokenizer_json(vocab_size: int) -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token=SPECIALS["unk_token"]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(SPECIALS.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer=trainer)
    bos = SPECIALS["bos_token"]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))]
    )
    return tok.to_str()


def tiny_tokenizer(chat: bool = False, vocab_size: int = VOCAB_SIZE):
    """A byte-level BPE wrapped for transformers; ``chat`` adds a Jinja chat template."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_tokenizer_json(vocab_size)), model_max_length=512, **SPECIALS
    )
    if chat:
        tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def tiny_config(kind: str, tokenizer):
    from transformers import BertConfig, LlamaConfig, Phi3Config

    ids = dict(pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    common = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, max_position_embeddings=512)
    if kind == "llama":
        return LlamaConfig(**common, num_key_value_heads=2, tie_word_embeddings=False, **ids)
    if kind == "phi3":
        return Phi3Config(**common, num_key_value_heads=4, tie_word_embeddings=False, **ids)
    if kind == "bert":
        return BertConfig(**{**common, "num_attention_heads": 2}, pad_token_id=tokenizer.pad_token_id)
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def tiny_model(kind: str, tokenizer=None, seed: int = 0):
    """A random tiny model: ``AutoModelForCausalLM`` for decoders, ``AutoModel`` for BERT."""
    from transformers import AutoModel, AutoModelForCausalLM

    tokenizer = tokenizer or tiny_tokenizer(chat=kind != "bert")
    config = tiny_config(kind, tokenizer)
    torch.manual_seed(seed)
    cls = AutoModel if kind == "bert" else AutoModelForCausalLM
    return cls.from_config(config).eval()


def save_tiny_backbone(kind: str, path: str | Path, *, chat: bool | None = None, seed: int = 0) -> Path:
    """Write a tiny ``kind`` model and its tokenizer to ``path``; return the folder."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = tiny_tokenizer(chat=(kind != "bert") if chat is None else chat)
    tiny_model(kind, tokenizer, seed=seed).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
