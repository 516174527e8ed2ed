"""``phudge bench speed``: the head judge against generative judging and the matmul limit.

In one process, on the same backbone, dtype and N real prompts:

1. judge: the production grading path, ``Judge.grade_many`` (tokenisation, length-grouped
   batches, forward, head), around an untrained ``JudgeModule`` (speed does not depend on
   the weights; its default LoRA adapter is merged as a trained one would be);
2. generative: the same backbone writing a feedback and ``[RESULT] n`` greedily, as Prometheus
   judges, at its best: KV cache, batched left-padded ``generate``, ``inference_mode``, the same
   dtype; a row may stop early at EOS (the mean of new tokens is reported);
3. limits, at the peak matmul rate measured here in the judge's dtype: ``limit_per_s``, the
   weights only, 2 x (non-embedding parameters) x (real prompt tokens) FLOPs per judgment; and
   ``full_limit_per_s``, every matmul FLOP the forward must do, attention included
   (``forward_flops``);
4. padding waste: padded tokens over all tokens in the judge's batches.

The last line with ``--json`` is one JSON object: ``judge_per_s``, ``generative_per_s``,
``limit_per_s`` and ``limit_fraction`` (weights only), ``full_limit_per_s`` and
``full_limit_fraction`` (attention included), ``padding_waste``, ``tokens_per_s`` and the settings.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

from phudge_lightning.bench.flops import (
    forward_flops,
    non_embedding_parameters,
    peak_matmul_flops,
    resolve_dtype,
    synchronize,
)
from phudge_lightning.bench.generative import bench_generative
from phudge_lightning.bench.profiler import profile_judge
from phudge_lightning.bench.serve import percentile

DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared/data/benchmarks/vicuna_eval.json"


# -- the head judge ------------------------------------------------------------------------------
def bench_judge(judge, records: list, batch_size: int, repeat: int = 1) -> dict:
    """Time ``judge.grade_many`` over ``records`` (best of ``repeat``), after a one-row warm-up."""
    from phudge_lightning.judge import BatchStats

    start = time.perf_counter()
    judge.grade_many(records[:1], batch_size=batch_size)  # warm-up
    warmup_s = time.perf_counter() - start
    start = time.perf_counter()
    encoded = judge._encode(records)  # tokenisation alone, to report its share
    tokenise_s = time.perf_counter() - start
    best = None
    for _ in range(repeat):
        judge.stats = BatchStats()
        synchronize(judge.device)
        start = time.perf_counter()
        grades = judge.grade_many(records, batch_size=batch_size)
        synchronize(judge.device)
        elapsed = time.perf_counter() - start
        if best is None or elapsed < best[0]:
            best = (elapsed, judge.stats, grades)
    seconds, stats, grades = best
    return {"seconds": seconds, "warmup_s": warmup_s, "tokenise_s": tokenise_s, "stats": stats,
            "lengths": [len(e.input_ids) for e in encoded], "scored": sum(g.score is not None for g in grades)}


# -- the benchmark -------------------------------------------------------------------------------
def load_prompts(data: str, n: int) -> list:
    from datamodules.sources import load_records

    records, _ = load_records(data, skip_invalid=True, require_score=False, limit=n)
    if not records:
        raise SystemExit(f"phudge bench speed: no valid rows in {data}")
    return records


def run(args: argparse.Namespace) -> dict:
    from phudge_lightning.model.backbone import load_backbone
    from phudge_lightning.judge import Judge
    from phudge_lightning.model.module import DEFAULT_LORA, JudgeModule

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(0)
    peaks = {"float32": peak_matmul_flops(torch.float32, device, seconds=args.peak_seconds)}
    if device.type == "cpu" or torch.cuda.is_bf16_supported():
        peaks["bfloat16"] = peak_matmul_flops(torch.bfloat16, device, seconds=args.peak_seconds)
    dtype = resolve_dtype(args.dtype, device, peaks)
    if dtype not in peaks:
        peaks[dtype] = peak_matmul_flops(getattr(torch, dtype), device, seconds=args.peak_seconds)
    records = load_prompts(args.data, args.n)
    n_gen = min(args.generative_n or len(records), len(records))
    batch_size = args.batch_size

    module = JudgeModule(backbone=args.backbone, head="regression", lora=None if args.no_lora else DEFAULT_LORA, dtype=dtype)
    judge = Judge(module, device=str(device), batch_size=batch_size)
    if args.max_padding is not None:
        judge.max_padding = args.max_padding
    params = non_embedding_parameters(module.backbone)
    measured = bench_judge(judge, records, batch_size, repeat=args.repeat)
    lengths = measured["lengths"]
    prompts = [e.input_ids for e in judge._encode(records[:n_gen])]  # what the judge read

    result = {
        "backbone": args.backbone, "data": str(args.data), "n": len(records), "batch_size": batch_size,
        "dtype": dtype, "device": str(device), "threads": torch.get_num_threads(), "lora_merged": not args.no_lora,
        "warmup_s": measured["warmup_s"],
        "max_new_tokens": args.max_new_tokens, "generative_n": n_gen if not args.skip_generative else 0,
        "generative_batch_size": args.generative_batch_size,
        "prompt_tokens_mean": statistics.fmean(lengths), "prompt_tokens_median": statistics.median(lengths),
        "prompt_tokens_p99": percentile(lengths, 0.99), "non_embedding_params": params,
        "tokenise_share": measured["tokenise_s"] / measured["seconds"],
        "padding_waste": measured["stats"].padding_waste, "judge_batches": measured["stats"].batches,
        "peak_flops": peaks[dtype], "peak_flops_by_dtype": peaks, "load_avg": [load_average()],
    }
    judge_runs = [measured["seconds"]]
    if not args.skip_generative:
        model = load_backbone(args.backbone, causal=True, dtype=dtype).to(device).eval()
        gen = bench_generative(model, module.tokenizer, prompts, result["generative_batch_size"], args.max_new_tokens, device)
        result.update({
            "generative_s": gen["seconds"], "generative_per_s": n_gen / gen["seconds"],
            "new_tokens_mean": statistics.fmean(gen["new_tokens"]), "generative_parsed": gen["parsed"] / n_gen,
            "generative_padding_waste": gen["padding_waste"],
        })
        result["load_avg"].append(load_average())
        # The judge again, after: a load that drifts during the long generation weighs on both sides.
        judge_runs.append(bench_judge(judge, records, batch_size, repeat=args.repeat)["seconds"])
        result["load_avg"].append(load_average())
    if args.profile:
        breakdown = profile_judge(judge, records, batch_size)
        result.update({k: v for k, v in breakdown.items() if not k.endswith("_s")})
        # The FLOPs the limit counts, over the time spent in matmul kernels, against the peak.
        limit_s = 2 * params * sum(lengths) / peaks[dtype]
        result["matmul_efficiency"] = limit_s / breakdown["matmul_s"]
        result["attention_bound"] = limit_s / (limit_s + breakdown["attention_s"])
    seconds = statistics.fmean(judge_runs)
    result.update({"judge_s": seconds, "judge_runs_s": judge_runs, "judge_per_s": len(records) / seconds,
                   "tokens_per_s": sum(lengths) / seconds})
    result["limit_per_s"] = peaks[dtype] / (2 * params * statistics.fmean(lengths))
    result["limit_fraction"] = result["judge_per_s"] / result["limit_per_s"]
    flops = forward_flops(module.backbone, lengths)
    result["full_limit_per_s"] = peaks[dtype] * len(lengths) / sum(flops.values())
    result["full_limit_fraction"] = result["judge_per_s"] / result["full_limit_per_s"]
    result["attention_flops_share"] = flops["attention"] / sum(flops.values())
    if "generative_per_s" in result:
        result["speedup"] = result["judge_per_s"] / result["generative_per_s"]
    return result


def load_average() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def format_table(result: dict):
    """A rich table: judgments/s of the judge, generative judging and the limit, with notes below."""
    from rich.console import Group
    from rich.table import Table

    table = Table(title=f"phudge bench speed: {Path(result['backbone']).name}, {result['n']} prompts "
                        f"(median {result['prompt_tokens_median']:.0f} tokens), {result['dtype']}, {result['device']}, "
                        f"{result['threads']} threads")
    for column in ("", "judgments/s", "x generative", "of the limit", "of the full limit"):
        table.add_column(column, justify="right" if column else "left")
    gen = result.get("generative_per_s")
    rows = [("head judge", result["judge_per_s"]), ("generative", gen), ("limit (weights)", result["limit_per_s"]),
            ("full limit (+ attention)", result["full_limit_per_s"])]
    for name, per_s in rows:
        if per_s:
            table.add_row(name, f"{per_s:.3f}", f"{per_s / gen:.1f}" if gen else "-", f"{per_s / result['limit_per_s']:.0%}",
                          f"{per_s / result['full_limit_per_s']:.0%}")
    notes = [
        f"head judge: Judge.grade_many, batch size {result['batch_size']} ({result['judge_batches']} batches), "
        + ("timed before and after generating, " if len(result["judge_runs_s"]) > 1 else "")
        + f"{result['tokens_per_s']:.0f} tokens/s, padding waste {result['padding_waste']:.1%}, "
        f"tokenising {result['tokenise_share']:.1%} of its time",
        f"limit: 2 x {result['non_embedding_params'] / 1e6:.1f}M non-embedding parameters x "
        f"{result['prompt_tokens_mean']:.0f} tokens per judgment at {result['peak_flops'] / 1e9:.0f} GFLOP/s "
        f"(measured {result['dtype']} matmul peak); the full limit adds attention's FLOPs "
        f"({result['attention_flops_share']:.0%} of the forward's)",
    ]
    if gen:
        notes.insert(1, f"generative: {result['generative_n']} prompts, batch size {result['generative_batch_size']}, "
                        f"{result['new_tokens_mean']:.0f} new tokens on average (at most {result['max_new_tokens']}), "
                        f"[RESULT] parsed in {result['generative_parsed']:.0%}")
    if "matmul_share" in result:
        notes.append(f"time (profiled): matmul {result['matmul_share']:.0%}, attention {result['attention_share']:.0%}, "
                     f"other {result['other_share']:.0%}; in matmuls the rate is {result['matmul_efficiency']:.0%} of "
                     "the peak: the most of the limit the judge could reach with every other cost gone")
        notes.append(f"attention alone: with its matmuls at the peak and nothing else left, SDPA's kernels as "
                     f"measured would still hold any judge to {result['attention_bound']:.0%} of the limit")
    loads = [x for x in result.get("load_avg") or [] if x is not None]
    # The benchmark's own threads count in the load average: more than those means other processes.
    if loads and max(loads) > result["threads"] + 0.75:
        notes.append(f"load average up to {max(loads):.1f} with {result['threads']} threads of ours on "
                     f"{os.cpu_count()} cores: other processes compete, so these figures are low (on a shared "
                     "machine, --threads 1 suffers far less than more threads)")
    return Group(table, *notes)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="phudge bench speed", description=__doc__.split("\n\n")[0])
    p.add_argument("--backbone", default="smollm2-135m", help="embedded name, local folder or hub id")
    p.add_argument("--data", default=str(DEFAULT_DATA), help="prompts: any source datamodules.sources reads")
    p.add_argument("--n", type=int, default=16, help="prompts (the first N valid rows)")
    p.add_argument("--batch-size", type=int, default=8, help="the judge's batch size (rows share a batch only "
                   "within the judge's padding tolerance: on CPU, equal lengths)")
    p.add_argument("--generative-n", type=int, default=None, help="generate on the first N prompts only (default all)")
    p.add_argument("--generative-batch-size", type=int, default=16,
                   help="generate's batch (16: its best on a 2-core CPU; decode cost per row falls with batch)")
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16"),
                   help="auto: the dtype of the higher measured matmul peak")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    p.add_argument("--no-lora", action="store_true", help="a bare backbone instead of a merged LoRA adapter")
    p.add_argument("--max-padding", type=float, default=None, help="override the judge's padding tolerance")
    p.add_argument("--repeat", type=int, default=1, help="time the judge this many times, keep the best")
    p.add_argument("--peak-seconds", type=float, default=2.0, help="time spent measuring each matmul peak")
    p.add_argument("--skip-generative", action="store_true")
    p.add_argument("--profile", action="store_true", help="add where the judge's time goes (matmul, attention, "
                   "other) and the matmul rate reached in matmuls, from one extra profiled pass")
    p.add_argument("--json", action="store_true", help="end with one JSON line")
    return p


def main(argv: list[str] | None = None) -> int:
    from phudge_lightning.bench import run_and_print

    return run_and_print(run, format_table, parser().parse_args(argv))
