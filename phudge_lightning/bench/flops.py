"""FLOPs: the matmul FLOPs a forward must do (``forward_flops``, ``non_embedding_parameters``),
and the device's measured matmul peak (``peak_matmul_flops``) they are held against."""

from __future__ import annotations

import time

import torch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_matmul_flops(dtype: torch.dtype, device: torch.device, size: int = 2048, seconds: float = 1.0) -> float:
    """The best FLOP/s of ``size`` x ``size`` matmuls over timed rounds that last ``seconds`` in all
    (the best round: the machine's peak, not its average under another process's load)."""
    a = torch.randn(size, size, dtype=dtype, device=device)
    b = torch.randn(size, size, dtype=dtype, device=device)
    flops, best, spent, calls = 2 * size**3, 0.0, 0.0, 1
    for _ in range(2):
        a @ b  # warm-up (and oneDNN's first-call kernel choice)
    synchronize(device)
    while spent < seconds:
        start = time.perf_counter()
        for _ in range(calls):
            a @ b
        synchronize(device)
        elapsed = time.perf_counter() - start
        spent += elapsed
        best = max(best, calls * flops / elapsed)
        if elapsed < seconds / 20:
            calls *= 2
    return best


def non_embedding_parameters(model: torch.nn.Module) -> int:
    """Parameters that a token's forward multiplies by: all but embedding tables and LoRA factors
    (merged into the weights they adapt, see ``Judge``)."""
    embedding = {id(p) for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()}
    return sum(p.numel() for name, p in model.named_parameters() if id(p) not in embedding and "lora_" not in name)


def attention_shape(config) -> tuple[int, int, bool]:
    """(layers, query heads x head size, causal) of a transformers config."""
    from datamodules.backbones import is_encoder

    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return config.num_hidden_layers, heads * head_dim, not is_encoder(config)


def forward_flops(model: torch.nn.Module, lengths: list[int], config=None) -> dict[str, int]:
    """The matmul FLOPs of one forward over each prompt of ``lengths``, summed (2 FLOPs a multiply-add):

        weights(T)   = 2 x W x T + 2 x W1   W: the weights of every ``nn.Linear`` the tokens pass
                                            through; W1: those of a pooler, which reads one token
        attention(T) = 4 x L x (h x d) x P(T)   Q.K^T and A.V in each of L layers, h query heads of size d;
                                            P(T) = T(T+1)/2 query-key pairs under a causal mask (flash
                                            kernels skip the masked half), T^2 for an encoder

    Grouped KV heads do not change it (every query head still meets every key). Elementwise work
    (norms, softmax, activations, rotary) is not counted, as in the MFU convention. ``model`` is the
    backbone as it runs (LoRA merged: its factors would count otherwise)."""
    per_token = per_row = 0
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Linear):
            if "pooler" in name.split("."):
                per_row += m.weight.numel()
            else:
                per_token += m.weight.numel()
    layers, width, causal = attention_shape(config or model.config)
    pairs = sum(t * (t + 1) // 2 if causal else t * t for t in lengths)
    return {"weights": 2 * per_token * sum(lengths) + 2 * per_row * len(lengths), "attention": 4 * layers * width * pairs}


def resolve_dtype(name: str, device: torch.device, peaks: dict[str, float]) -> str:
    """``auto``: the dtype of the higher measured matmul peak (bf16 on CPUs with AMX or AVX512-BF16)."""
    if name != "auto":
        return name
    return max(peaks, key=peaks.get)
