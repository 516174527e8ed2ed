"""The GPU check of ``phudge bench speed``: a Phi-3-mini-sized judge at the paper's 1488 tokens.

Speed does not depend on the weights, so the backbone is built from ``Phi3Config`` with
Phi-3-mini-4k's sizes and random weights, saved once to a temporary folder with the tests'
small built-in tokenizer (no hub), and loaded by ``JudgeModule`` as any backbone is. In one
process, in bf16:

- forward: ``JudgeModule.predict_scores`` on exactly ``--seq-len`` tokens per row, for each
  batch size of ``--batch-sizes``: judgments/s and MFU;
- judge: ``Judge.grade_many`` (tokenisation, length-grouped batches, forward, head) on
  prompts built to about ``--seq-len`` tokens, at the best batch size;
- generative: the same weights writing up to ``--max-new-tokens`` tokens greedily, batched and
  left-padded with a KV cache (``phudge_lightning.bench.generative.bench_generative``).

MFU = 2 x non-embedding parameters x tokens x judgments/s over the GPU's dense bf16 peak
(H100/H200 SXM: 989 TFLOP/s); the measured matmul peak is reported beside it.

    python phudge_lightning/bench/gpu/gpu_bench.py --preset tiny --device cpu --json     # the CPU-runnable pieces
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[3]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the project, and tests/tiny.py's tokenizer

from phudge_lightning.bench.flops import non_embedding_parameters, peak_matmul_flops, synchronize  # noqa: E402
from phudge_lightning.bench.generative import bench_generative  # noqa: E402

PRESETS = {
    # microsoft/Phi-3-mini-4k-instruct's sizes: 3.8B parameters
    "phi3-mini": dict(hidden_size=3072, intermediate_size=8192, num_hidden_layers=32, num_attention_heads=32,
                      num_key_value_heads=32, vocab_size=32064, max_position_embeddings=4096),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=4, vocab_size=512, max_position_embeddings=2048),
}
# Dense bf16 tensor-core peaks (no sparsity), by a word of the device name.
SPEC_BF16_PEAK = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 70e12}
WORDS = ("the steak should rest for five minutes so that the juice stays in the meat and a good answer says "
         "why with an example because a helpful response is correct clear and complete").split()


def spec_peak(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    if "H100" in name and "PCIe" in name:
        return 756e12
    return next((peak for word, peak in SPEC_BF16_PEAK.items() if word in name), None)


def save_random_backbone(folder: Path, preset: str, dtype: torch.dtype, device: torch.device) -> Path:
    """A ``Phi3ForCausalLM`` of ``preset`` sizes with random weights, and a tokenizer, in ``folder``."""
    from transformers import Phi3Config, Phi3ForCausalLM

    from tiny import tiny_tokenizer

    tokenizer = tiny_tokenizer(chat=True)
    sizes = PRESETS[preset]
    tokenizer.model_max_length = sizes["max_position_embeddings"]
    config = Phi3Config(**sizes, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                        eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=False)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = Phi3ForCausalLM(config)
    finally:
        torch.set_default_dtype(default)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    del model
    release(device)
    return folder


def release(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def calibrated_records(encoder, n: int, tokens: int, seed: int = 0) -> list[dict]:
    """``n`` prompts of about ``tokens`` tokens each (97 to 100%), of varied words."""
    rng = random.Random(seed)

    def record(i: int, words: int) -> dict:
        return {"instruction": f"Question {i}: how long should a steak rest, and why?",
                "response": " ".join(rng.choice(WORDS) for _ in range(words)),
                "rubric": "Is the answer correct, clear and complete?", "reference_answer": "Five minutes, so the juice stays in."}

    from datamodules.records import validate_record

    def length(row: dict) -> int:
        return encoder.length(validate_record(row, require_score=False))  # untruncated

    base, probe = length(record(0, 1)), length(record(0, 401))
    per_word = (probe - base) / 400
    target = max(int((tokens - base) / per_word) + 1, 1)
    return [record(i, max(int(target * rng.uniform(0.97, 0.995)), 1)) for i in range(n)]


@torch.inference_mode()
def forward_rate(module, batch: int, seq_len: int, iters: int, device: torch.device) -> float:
    """Judgments/s of ``module.predict_scores`` on ``batch`` rows of exactly ``seq_len`` tokens."""
    ids = torch.randint(10, 400, (batch, seq_len), device=device)
    mask = torch.ones_like(ids)
    module.predict_scores(ids, mask)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(iters):
        module.predict_scores(ids, mask)
    synchronize(device)
    return iters * batch / (time.perf_counter() - start)


def run(args: argparse.Namespace) -> dict:
    from phudge_lightning.model.backbone import load_backbone
    from phudge_lightning.judge import BatchStats, Judge
    from phudge_lightning.model.module import DEFAULT_LORA, JudgeModule

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = getattr(torch, args.dtype)
    result = {"preset": args.preset, "seq_len": args.seq_len, "dtype": args.dtype, "device": str(device),
              "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"}
    started = time.perf_counter()
    result["peak_measured"] = peak_matmul_flops(dtype, device, size=8192 if device.type == "cuda" else 1024,
                                                seconds=args.peak_seconds)
    result["peak_spec"] = spec_peak(device)
    peak = result["peak_spec"] or result["peak_measured"]
    with tempfile.TemporaryDirectory(prefix="phudge-gpu-bench-") as tmp:
        folder = save_random_backbone(Path(tmp) / args.preset, args.preset, dtype, device)
        result["setup_s"] = time.perf_counter() - started
        module = JudgeModule(backbone=str(folder), head="regression", lora=DEFAULT_LORA, dtype=args.dtype)
        judge = Judge(module, device=str(device), batch_size=max(args.batch_sizes), max_length=args.seq_len)
        params = non_embedding_parameters(module.backbone)
        flops = 2 * params * args.seq_len
        result["non_embedding_params"] = params

        forward = {b: forward_rate(module, b, args.seq_len, args.iters, device) for b in args.batch_sizes}
        best = max(forward, key=forward.get)
        result["forward"] = {str(b): {"judgments_per_s": r, "mfu": r * flops / peak} for b, r in forward.items()}
        result["batch_size"] = best

        records = calibrated_records(judge.encoder, args.n, args.seq_len)
        judge.grade_many(records[:best], batch_size=best)  # warm-up
        judge.stats = BatchStats()
        synchronize(device)
        start = time.perf_counter()
        judge.grade_many(records, batch_size=best)
        synchronize(device)
        seconds = time.perf_counter() - start
        mean_tokens = judge.stats.tokens / judge.stats.rows
        result.update({"judge_per_s": args.n / seconds, "judge_tokens_mean": mean_tokens,
                       "judge_over_forward": args.n / seconds / forward[best],
                       "judge_mfu": args.n / seconds * 2 * params * mean_tokens / peak,
                       "padding_waste": judge.stats.padding_waste})
        prompts = [e.input_ids for e in judge._encode([validate(r) for r in records[: args.generative_n]])]
        tokenizer = module.tokenizer
        del judge, module
        release(device)

        model = load_backbone(str(folder), causal=True, dtype=args.dtype).to(device).eval()
        gen = bench_generative(model, tokenizer, prompts, args.generative_batch_size, args.max_new_tokens, device)
        result.update({"generative_per_s": len(prompts) / gen["seconds"],
                       "new_tokens_mean": statistics.fmean(gen["new_tokens"]),
                       "generative_batch_size": args.generative_batch_size})
        result["speedup"] = result["judge_per_s"] / result["generative_per_s"]
        del model
        release(device)
    result["total_s"] = time.perf_counter() - started
    return result


def validate(row: dict):
    from datamodules.records import validate_record

    return validate_record(row, require_score=False)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="phi3-mini", choices=sorted(PRESETS))
    p.add_argument("--seq-len", type=int, default=1488, help="tokens per judgment (the paper's 1488)")
    p.add_argument("--batch-sizes", type=lambda s: [int(x) for x in s.split(",")], default=[8, 16, 32])
    p.add_argument("--iters", type=int, default=3, help="timed forward passes per batch size")
    p.add_argument("--n", type=int, default=128, help="prompts for Judge.grade_many")
    p.add_argument("--generative-n", type=int, default=32)
    p.add_argument("--generative-batch-size", type=int, default=32)
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float16", "float32"))
    p.add_argument("--device", default=None)
    p.add_argument("--peak-seconds", type=float, default=2.0)
    p.add_argument("--json", action="store_true", help="end with one JSON line")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    result = run(args)
    peak = result["peak_spec"] or result["peak_measured"]
    print(f"{result['device_name']}: {args.preset}, {args.seq_len} tokens, {args.dtype}; "
          f"peak {peak / 1e12:.0f} TFLOP/s ({'spec' if result['peak_spec'] else 'measured'}), "
          f"measured matmul {result['peak_measured'] / 1e12:.0f} TFLOP/s")
    for b, row in result["forward"].items():
        print(f"  forward, batch {b:>3}: {row['judgments_per_s']:9.2f} judgments/s, MFU {row['mfu']:.1%}")
    print(f"  Judge.grade_many, batch {result['batch_size']}: {result['judge_per_s']:.2f} judgments/s, "
          f"MFU {result['judge_mfu']:.1%}, padding {result['padding_waste']:.1%}; "
          f"{result['judge_over_forward']:.0%} of the bare forward's judgments/s")
    print(f"  generative, batch {result['generative_batch_size']}: {result['generative_per_s']:.3f} judgments/s "
          f"({result['new_tokens_mean']:.0f} new tokens on average); the judge is {result['speedup']:.1f}x faster")
    if args.json:
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
