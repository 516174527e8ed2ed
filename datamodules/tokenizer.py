"""A backbone's tokenizer, padded on the side its pooling reads."""

from __future__ import annotations

from datamodules.backbones import backbone_files, is_encoder


def load_tokenizer(name: str):
    """The backbone's tokenizer, with a pad token and the padding side its pooling needs.

    Decoders pad on the left, so the last position of every row is its last real token;
    encoders pad on the right.
    """
    from transformers import AutoConfig, AutoTokenizer

    path, gguf_file = backbone_files(name)
    source = {"gguf_file": gguf_file} if gguf_file else {}
    tokenizer = AutoTokenizer.from_pretrained(path, **source)
    config = AutoConfig.from_pretrained(path, **source)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    tokenizer.padding_side = "right" if is_encoder(config) else "left"
    limit = getattr(config, "max_position_embeddings", None)
    if limit and (tokenizer.model_max_length is None or tokenizer.model_max_length > limit):
        tokenizer.model_max_length = limit
    return tokenizer
