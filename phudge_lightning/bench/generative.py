"""The generative baseline of ``phudge bench speed``: the backbone writing a feedback and
``[RESULT] n`` greedily, as Prometheus judges, at its best (KV cache, batched left-padded
``generate``, ``inference_mode``)."""

from __future__ import annotations

import time

import torch

from phudge_lightning.bench.flops import synchronize


def new_token_counts(generated: torch.Tensor, eos_ids: set[int]) -> list[int]:
    """Tokens each row generated, up to and including its first EOS."""
    counts = []
    for row in generated.tolist():
        stop = next((i for i, t in enumerate(row) if t in eos_ids), None)
        counts.append(len(row) if stop is None else stop + 1)
    return counts


def eos_token_ids(model, tokenizer) -> set[int]:
    ids = model.generation_config.eos_token_id
    ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    return ids | ({tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set())


@torch.inference_mode()
def bench_generative(model, tokenizer, prompts: list[list[int]], batch_size: int, max_new_tokens: int,
                     device: torch.device) -> dict:
    """Greedy, batched, left-padded ``generate`` with a KV cache over ``prompts`` (token ids), as
    Prometheus judges: a feedback, then ``[RESULT] n``."""
    from datamodules.batching import Collator
    from heads.causal import parse_score

    collate = Collator(tokenizer.pad_token_id, "left")
    settings = dict(do_sample=False, use_cache=True, pad_token_id=tokenizer.pad_token_id)
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))  # length-sorted: least padding
    eos = eos_token_ids(model, tokenizer)
    shortest = collate([{"input_ids": prompts[order[-1]], "index": 0}])
    model.generate(input_ids=shortest["input_ids"].to(device), attention_mask=shortest["attention_mask"].to(device),
                   max_new_tokens=2, **settings)  # warm-up
    counts, parsed, slots, tokens = [], 0, 0, 0
    synchronize(device)
    start = time.perf_counter()
    for i in range(0, len(order), batch_size):
        batch = collate([{"input_ids": prompts[j], "index": 0} for j in order[i : i + batch_size]])
        ids = batch["input_ids"].to(device)
        out = model.generate(input_ids=ids, attention_mask=batch["attention_mask"].to(device),
                             max_new_tokens=max_new_tokens, **settings)
        new = out[:, ids.shape[1]:]
        counts += new_token_counts(new, eos)
        parsed += sum(parse_score(t) is not None for t in tokenizer.batch_decode(new, skip_special_tokens=True))
        tokens += int(batch["attention_mask"].sum())
        slots += batch["attention_mask"].numel()
    synchronize(device)
    return {"seconds": time.perf_counter() - start, "new_tokens": counts, "parsed": parsed,
            "padding_waste": 1 - tokens / slots if slots else 0.0}
