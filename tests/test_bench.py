"""``phudge bench``: the dispatcher, the speed and train benchmarks and the GPU script's pieces,
run on tiny random models. These check structure (keys, counts, bounds), never timings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from datamodules.records import validate_record
from phudge_lightning import bench
from phudge_lightning.bench import flops, generative, profiler
from phudge_lightning.bench import speed as bench_speed
from phudge_lightning.bench import train as bench_train
from phudge_lightning.judge import BatchStats, Judge, length_batches
from phudge_lightning.model.module import JudgeModule

REPO = Path(__file__).resolve().parents[1]
LORA = {"r": 2, "alpha": 4, "dropout": 0.0}
SPEED_KEYS = {"judge_per_s", "generative_per_s", "limit_per_s", "padding_waste", "tokens_per_s", "backbone", "n",
              "batch_size", "generative_batch_size", "dtype", "device", "threads", "max_new_tokens", "new_tokens_mean",
              "speedup", "limit_fraction", "peak_flops", "non_embedding_params"}


def last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


# -- the dispatcher ------------------------------------------------------------------------------
def test_bench_usage_and_unknown(capsys):
    assert bench.main([]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("speed", "train", "serve"))
    assert bench.main(["nope"]) == 2


def test_bench_dispatches_each_benchmark(monkeypatch):
    called = {}
    for name, (module_name, _) in bench.PROGRAMS.items():
        module = __import__(module_name, fromlist=["main"])
        monkeypatch.setattr(module, "main", lambda argv, name=name: called.setdefault(name, argv) and 0)
    for name in bench.PROGRAMS:
        bench.main([name, "--x", "1"])
    assert called == {name: ["--x", "1"] for name in ("speed", "train", "serve")}
    assert bench.PROGRAMS["serve"][0] == "phudge_lightning.bench.serve"


# -- batching --------------------------------------------------------------------------------------
@pytest.mark.parametrize("tolerance", [0.0, 0.05, 0.3, 1.0])
@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_length_batches_partition_and_padding_bound(tolerance, batch_size):
    lengths = [17, 3, 40, 40, 39, 12, 12, 12, 25, 1, 38, 40]
    batches = length_batches(lengths, batch_size, tolerance)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert all(1 <= len(b) <= batch_size for b in batches)
    widths = [max(lengths[i] for i in b) for b in batches]
    assert widths == sorted(widths, reverse=True)  # longest first
    for b, width in zip(batches, widths):
        assert 1 - sum(lengths[i] for i in b) / (width * len(b)) <= tolerance + 1e-12
    if tolerance == 0.0:
        assert all(len({lengths[i] for i in b}) == 1 for b in batches)


def test_batch_stats_padding_waste():
    assert BatchStats().padding_waste == 0.0
    assert BatchStats(rows=2, batches=1, tokens=15, slots=20).padding_waste == pytest.approx(0.25)


# -- the judge's speed path ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def module(tiny_llama_dir):
    return JudgeModule(backbone=str(tiny_llama_dir), head="regression", lora=LORA)


def records(n: int = 7) -> list:
    words = "the steak should rest for five minutes so the juice stays in".split()
    return [validate_record({"instruction": f"Q{i}: how long?", "response": " ".join(words[: 1 + 2 * i])},
                            require_score=False) for i in range(n)]


def test_judge_merges_lora_and_grades_alike(tiny_llama_dir):
    module = JudgeModule(backbone=str(tiny_llama_dir), head="regression", lora=LORA)
    torch.nn.init.normal_(module.backbone.base_model.model.layers[0].self_attn.q_proj.lora_B["default"].weight)
    rows = records(3)
    encoded = Judge(JudgeModule(backbone=str(tiny_llama_dir), head="regression"), device="cpu")._encode(rows)
    with_adapter = [float(module.predict_scores(torch.tensor([e.input_ids]), torch.ones(1, len(e.input_ids)))["score"][0])
                    for e in encoded]
    judge = Judge(module, device="cpu", batch_size=1)
    merged = [g.score for g in judge.grade_many(rows)]
    assert merged == pytest.approx(with_adapter, abs=1e-4)
    # Merged and unloaded: plain Linear layers, no peft wrapper or LoRA factor left.
    assert not any("lora_" in name for name, _ in module.backbone.named_parameters())
    assert type(module.backbone.layers[0].self_attn.q_proj) is torch.nn.Linear
    Judge(module, device="cpu")  # a second judge on a prepared module changes nothing
    assert [g.score for g in judge.grade_many(rows)] == pytest.approx(merged, abs=1e-6)


def test_padded_batches_grade_like_rows_alone_and_count_padding(module):
    judge = Judge(module, device="cpu", batch_size=4)
    rows = records(7)
    judge.max_padding = 0.0
    alone = [g.score for g in judge.grade_many(rows)]
    assert judge.stats.padding_waste == 0.0 and judge.stats.rows == 7
    judge.max_padding, judge.stats = 1.0, BatchStats()
    padded = [g.score for g in judge.grade_many(rows)]
    assert padded == pytest.approx(alone, abs=1e-4)
    assert judge.stats.batches == 2 and judge.stats.rows == 7 and 0 < judge.stats.padding_waste < 1
    streamed = [g.score for g in judge.iter_grades(rows, batch_size=2, block=1)]  # tokenised a block ahead
    assert streamed == pytest.approx(alone, abs=1e-4)


# -- bench speed -----------------------------------------------------------------------------------
def test_non_embedding_parameters_and_peak(module):
    total = sum(p.numel() for n, p in module.backbone.named_parameters() if "lora_" not in n)
    embedding = module.backbone.get_input_embeddings().weight.numel()
    assert flops.non_embedding_parameters(module.backbone) == total - embedding
    assert flops.peak_matmul_flops(torch.float32, torch.device("cpu"), size=64, seconds=0.01) > 0


@pytest.mark.parametrize("kind", ["llama", "phi3", "bert"])
def test_forward_flops_are_what_torch_counts_in_a_real_forward(kind):
    """The formula against torch's FLOP counter on tiny models (GQA for llama, an encoder for
    BERT). The counter does not know a mask, so it counts T^2 query-key pairs: the formula's
    bidirectional count; under a causal mask the formula counts T(T+1)/2."""
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import AutoModel

    from tiny import tiny_config, tiny_tokenizer

    config = tiny_config(kind, tiny_tokenizer(chat=kind != "bert"))
    model = AutoModel.from_config(config, attn_implementation="eager").eval()  # (the counter misses CPU SDPA)
    layers, width, causal = flops.attention_shape(config)
    assert (layers, width, causal) == (2, 32, kind != "bert")
    linear = sum(m.weight.numel() for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and "pooler" not in n)
    pooler = 2 * 32 * 32 if kind == "bert" else 0  # BERT's pooler reads the first token only
    for t in (7, 40):
        with FlopCounterMode(display=False) as counter, torch.inference_mode():
            model(input_ids=torch.randint(5, 100, (1, t)))
        counted = flops.forward_flops(model, [t], config=config)
        assert counted["weights"] == 2 * linear * t + pooler
        full_attention = 4 * layers * width * t * t
        assert counter.get_total_flops() == counted["weights"] + full_attention
        assert counted["attention"] == (4 * layers * width * t * (t + 1) // 2 if causal else full_attention)
    # summed over prompts: 2 x 8 x (7 + 40) ... and the pairs of each
    both = flops.forward_flops(model, [7, 40], config=config)
    assert both["weights"] == 2 * linear * 47 + 2 * pooler
    pairs = 7 * 8 // 2 + 40 * 41 // 2 if causal else 49 + 1600
    assert both["attention"] == 4 * layers * width * pairs


def test_new_token_counts():
    generated = torch.tensor([[5, 6, 2, 2], [5, 6, 7, 8], [2, 2, 2, 2]])
    assert generative.new_token_counts(generated, {2}) == [3, 4, 1]


def test_bench_speed_json(tiny_llama_dir, small_records_file, capsys):
    # float32: "auto" follows a 0.02 s peak measurement, which on a busy CPU may pick bfloat16 and
    # make the run minutes long; the choice itself is tested below
    argv = ["--backbone", str(tiny_llama_dir), "--data", str(small_records_file), "--n", "5", "--generative-n", "3",
            "--generative-batch-size", "2", "--max-new-tokens", "4", "--peak-seconds", "0.02", "--dtype", "float32", "--json"]
    assert bench_speed.main(argv) == 0
    out = capsys.readouterr().out
    result = last_json(out)
    assert SPEED_KEYS <= set(result)
    assert "head judge" in out and "generative" in out and "limit" in out  # the table came first
    assert result["n"] == 5 and result["generative_n"] == 3 and result["max_new_tokens"] == 4
    assert 0 < result["new_tokens_mean"] <= 4 and 0 <= result["padding_waste"] < 1
    assert min(result["judge_per_s"], result["generative_per_s"], result["limit_per_s"], result["tokens_per_s"]) > 0
    assert result["speedup"] == pytest.approx(result["judge_per_s"] / result["generative_per_s"])
    # attention's FLOPs make the full limit lower, the judge's share of it higher
    assert 0 < result["attention_flops_share"] < 1 and result["full_limit_per_s"] < result["limit_per_s"]
    assert result["full_limit_fraction"] == pytest.approx(result["judge_per_s"] / result["full_limit_per_s"])
    assert result["dtype"] in result["peak_flops_by_dtype"] and len(result["judge_runs_s"]) == 2


def test_auto_dtype_is_the_higher_measured_peak():
    cpu = torch.device("cpu")
    assert bench_speed.resolve_dtype("auto", cpu, {"float32": 2e11, "bfloat16": 9e11}) == "bfloat16"
    assert bench_speed.resolve_dtype("auto", cpu, {"float32": 2e11, "bfloat16": 1e11}) == "float32"
    assert bench_speed.resolve_dtype("float16", cpu, {"float32": 2e11}) == "float16"


def test_bench_speed_skip_generative_float32(tiny_llama_dir, small_records_file, capsys):
    argv = ["--backbone", str(tiny_llama_dir), "--data", str(small_records_file), "--n", "3", "--skip-generative",
            "--dtype", "float32", "--no-lora", "--max-padding", "0.5", "--peak-seconds", "0.02", "--json"]
    assert bench_speed.main(argv) == 0
    result = last_json(capsys.readouterr().out)
    assert result["dtype"] == "float32" and "generative_per_s" not in result and result["generative_n"] == 0
    assert not result["lora_merged"] and result["judge_per_s"] > 0


def test_bench_speed_profile_shares(tiny_llama_dir, small_records_file, capsys):
    argv = ["--backbone", str(tiny_llama_dir), "--data", str(small_records_file), "--n", "3", "--skip-generative",
            "--dtype", "float32", "--profile", "--peak-seconds", "0.02", "--json"]
    assert bench_speed.main(argv) == 0
    out = capsys.readouterr().out
    result = last_json(out)
    shares = [result[f"{k}_share"] for k in ("matmul", "attention", "other")]
    assert sum(shares) == pytest.approx(1.0) and result["matmul_share"] > 0 and result["attention_share"] > 0
    assert result["matmul_efficiency"] > 0 and "time (profiled)" in out
    # Attention takes time the limit does not count, so it bounds the reachable share below 1.
    assert 0 < result["attention_bound"] < 1 and "attention alone" in out


def test_op_class():
    assert profiler.op_class("aten::addmm") == profiler.op_class("aten::mm") == "matmul"
    assert profiler.op_class("aten::_scaled_dot_product_flash_attention_for_cpu") == "attention"
    assert profiler.op_class("aten::mul") == profiler.op_class("aten::rsqrt") == "other"


# -- bench train -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_bench_train_json(tiny_llama_dir, small_records_file, capsys):
    argv = ["--backbone", str(tiny_llama_dir), "--data", str(small_records_file), "--n", "40", "--batch-size", "4",
            "--steps", "2", "--warmup", "1", "--rounds", "1", "--max-length", "256", "--json"]
    assert bench_train.main(argv) == 0
    result = last_json(capsys.readouterr().out)
    assert result["phudge_tokens_per_s"] > 0 and result["plain_tokens_per_s"] > 0 and len(result["ratios"]) == 1
    assert result["ratio"] == pytest.approx(result["phudge_tokens_per_s"] / result["plain_tokens_per_s"])


def test_step_clock_times_after_warmup():
    clock = bench_train.StepClock(warmup=1)
    mask = torch.ones(2, 5)
    with pytest.raises(RuntimeError):
        clock.step(mask)
        clock.tokens_per_s
    clock.step(mask)
    clock.step(mask)
    assert clock.tokens == 20 and clock.tokens_per_s > 0


# -- the GPU script's CPU-runnable pieces ----------------------------------------------------------
def test_gpu_script_parses():
    subprocess.run(["bash", "-n", str(REPO / "phudge_lightning" / "bench" / "gpu" / "gpu.sh")], check=True)


@pytest.mark.slow
def test_gpu_bench_tiny_on_cpu():
    # float32: bfloat16 on a CPU is emulated or slow outside matmuls, and the script's steps are the same
    command = [sys.executable, str(REPO / "phudge_lightning" / "bench" / "gpu" / "gpu_bench.py"), "--preset", "tiny", "--device", "cpu",
               "--dtype", "float32", "--seq-len", "128", "--batch-sizes", "1,2", "--iters", "1", "--n", "4",
               "--generative-n", "2", "--generative-batch-size", "2", "--max-new-tokens", "3", "--peak-seconds", "0.02", "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = last_json(done.stdout)
    assert set(result["forward"]) == {"1", "2"} and result["batch_size"] in (1, 2)
    assert 0.9 * 128 <= result["judge_tokens_mean"] <= 128  # prompts built to about --seq-len tokens
    assert result["judge_per_s"] > 0 and result["generative_per_s"] > 0 and result["new_tokens_mean"] <= 3


def test_attention_timing_script_runs():
    command = [sys.executable, "-m", "phudge_lightning.bench.attention_cpu", "--tokens", "32", "--no-flex", "--dtype", "float32"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    times = {line.split(":")[0].strip(): float(line.split(":")[1].split()[0]) for line in done.stdout.splitlines()[1:]}
    assert set(times) == {"sdpa", "bmm", "weights"} and all(t > 0 for t in times.values())


def test_judge_in_bfloat16_grades_close_to_float32(tiny_llama_dir):
    module = JudgeModule(backbone=str(tiny_llama_dir), head="classification", loss="emd_squared", lora=LORA)
    rows = records(4)
    full = Judge(module, device="cpu").grade_many(rows)
    half = Judge(module, device="cpu", dtype="bfloat16").grade_many(rows)
    assert next(module.backbone.parameters()).dtype == torch.bfloat16
    assert next(module.head.parameters()).dtype == torch.float32
    assert [g.score for g in half] == pytest.approx([g.score for g in full], abs=0.05)
    assert all(sum(g.probabilities) == pytest.approx(1.0, abs=1e-3) for g in half)
