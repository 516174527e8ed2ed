"""One SmolLM2-135M layer's attention against its weight matmuls, on this CPU, in milliseconds.

    python -m phudge_lightning.bench.attention_cpu [--tokens 974] [--dtype bfloat16]

Why `phudge bench speed` cannot reach 70% of its limit in bf16: the limit counts the weights'
FLOPs only (2 x params x tokens), while the attention of every layer, T^2 work, runs far below
the matmul rate. Shapes are SmolLM2-135M's: hidden 576, 9 query heads and 3 key/value heads of
64, MLP 1536. Compared, for one layer and one row:

- ``sdpa``: torch's scaled_dot_product_attention, causal, GQA (what the judge runs);
- ``flex``: torch.compile'd flex_attention with a causal block mask;
- ``bmm``: scores by bmm, masked softmax, bmm;
- ``weights``: the time all seven weight matmuls (q, k, v, o, gate, up, down: 2 x 3.54M x T
  FLOPs) would take at the rate of one T x 576 x 1536 matmul measured here.
"""

from __future__ import annotations

import argparse
import time

import torch

HIDDEN, HEADS, KV_HEADS, HEAD_DIM, MLP = 576, 9, 3, 64, 1536
LAYER_PARAMS = 2 * HIDDEN * HIDDEN + 2 * HIDDEN * KV_HEADS * HEAD_DIM + 3 * HIDDEN * MLP


def ms(fn, repeat: int = 20) -> float:
    fn(), fn()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat * 1e3


@torch.inference_mode()
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tokens", type=int, default=974, help="prompt length (the Vicuna prompts' median)")
    p.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float32"))
    p.add_argument("--no-flex", action="store_true", help="skip flex_attention (it compiles for a few seconds)")
    args = p.parse_args()
    t, dtype = args.tokens, getattr(torch, args.dtype)
    q = torch.randn(1, HEADS, t, HEAD_DIM, dtype=dtype)
    k, v = (torch.randn(1, KV_HEADS, t, HEAD_DIM, dtype=dtype) for _ in range(2))
    sdpa = torch.nn.functional.scaled_dot_product_attention
    results = {"sdpa": ms(lambda: sdpa(q, k, v, is_causal=True, enable_gqa=True))}
    if not args.no_flex:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention

        mask = create_block_mask(lambda b, h, qi, ki: qi >= ki, None, None, t, t, device="cpu")
        flex = torch.compile(flex_attention)
        results["flex"] = ms(lambda: flex(q, k, v, block_mask=mask, enable_gqa=True))
    kr, vr = (x.repeat_interleave(HEADS // KV_HEADS, 1)[0] for x in (k, v))
    causal = torch.full((t, t), float("-inf"), dtype=dtype).triu(1)
    results["bmm"] = ms(lambda: torch.bmm(torch.softmax(torch.baddbmm(causal, q[0], kr.transpose(1, 2),
                                                                      alpha=HEAD_DIM ** -0.5), -1), vr))
    x, w = torch.randn(t, HIDDEN, dtype=dtype), torch.randn(MLP, HIDDEN, dtype=dtype)
    rate = 2 * t * HIDDEN * MLP / (ms(lambda: torch.nn.functional.linear(x, w)) / 1e3)
    results["weights"] = 2 * LAYER_PARAMS * t / rate * 1e3
    causal_flops = 2 * HEADS * t * t * HEAD_DIM  # QK^T and PV over the causal half
    print(f"{t} tokens, {args.dtype}, {torch.get_num_threads()} threads; matmul rate {rate / 1e9:.0f} GFLOP/s")
    for name, value in results.items():
        extra = "" if name == "weights" else f"  ({causal_flops / value / 1e6:.0f} GFLOP/s of causal work)"
        print(f"{name:>8}: {value:6.2f} ms{extra}")


if __name__ == "__main__":
    main()
