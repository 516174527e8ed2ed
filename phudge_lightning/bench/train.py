"""``phudge bench train``: training tokens/s of a ``phudge fit`` step against a plain loop.

Both sides train the same backbone with the same LoRA settings, a linear regression head on the
last token, MSE and AdamW, in the same dtype, on the same batches (one length-grouped loader of
``JudgeDataModule``, read live by both, so both pay for its tokenisation):

- phudge: ``JudgeModule`` under a Lightning ``Trainer`` (what ``phudge fit`` runs);
- plain: ``AutoModel`` + ``peft.get_peft_model`` + ``nn.Linear``, a hand-written loop.

Rounds alternate (phudge, plain, phudge, plain ...) so that a change in the machine's load hits
both; each round times ``--steps`` steps after ``--warmup`` untimed ones. Throughput is real
(non-padding) tokens over wall time, data loading included; the ratio is phudge over plain.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch


class StepClock:
    """Wall time and real tokens from the end of the warm-up steps to the end of the last step."""

    def __init__(self, warmup: int):
        self.warmup, self.steps, self.tokens, self.start, self.end = warmup, 0, 0, None, None

    def step(self, attention_mask: torch.Tensor) -> None:
        self.steps += 1
        if self.steps == self.warmup:
            self.start = time.perf_counter()
        elif self.steps > self.warmup:
            self.tokens += int(attention_mask.sum())
            self.end = time.perf_counter()

    @property
    def tokens_per_s(self) -> float:
        if self.start is None or self.end is None:  # no warm-up: time from the first step's end
            raise RuntimeError("too few steps to time: need more than --warmup")
        return self.tokens / (self.end - self.start)


def lightning_clock(warmup: int):
    import lightning as L

    class ClockCallback(L.Callback):
        def __init__(self):
            self.clock = StepClock(warmup)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            self.clock.step(batch["attention_mask"])

    return ClockCallback()


def phudge_round(module, datamodule, steps: int, warmup: int) -> float:
    import lightning as L

    clock = lightning_clock(max(warmup, 1))
    trainer = L.Trainer(accelerator="cpu" if not torch.cuda.is_available() else "auto", devices=1,
                        max_steps=steps + max(warmup, 1), limit_val_batches=0, num_sanity_val_steps=0,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[clock])
    trainer.fit(module, datamodule=datamodule)
    return clock.clock.tokens_per_s


class PlainJudge(torch.nn.Module):
    """What one writes without this project: peft model, last-token pooling, a linear head."""

    def __init__(self, backbone: str, lora: dict, dtype: torch.dtype):
        super().__init__()
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModel

        from phudge_lightning.model.gguf import resolve_backbone
        from phudge_lightning.model.backbone import lora_targets

        model = AutoModel.from_pretrained(resolve_backbone(backbone), dtype=dtype, attn_implementation="sdpa")
        config = LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
                            target_modules=lora_targets(model.config.model_type), bias="none")
        self.backbone = get_peft_model(model, config)
        self.head = torch.nn.Linear(model.config.hidden_size, 1, dtype=dtype)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        last = (torch.arange(attention_mask.shape[1], device=attention_mask.device) * attention_mask).argmax(-1)
        return self.head(hidden[torch.arange(len(hidden), device=hidden.device), last]).squeeze(-1)


def plain_round(model: PlainJudge, optimizer, loader, steps: int, warmup: int, device: torch.device) -> float:
    clock = StepClock(max(warmup, 1))
    model.train()
    batches = iter(loader)
    for _ in range(steps + max(warmup, 1)):
        batch = next(batches)
        prediction = model(batch["input_ids"].to(device), batch["attention_mask"].to(device))
        loss = torch.nn.functional.mse_loss(prediction.float(), batch["score"].to(device))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        clock.step(batch["attention_mask"])
    return clock.tokens_per_s


def run(args: argparse.Namespace) -> dict:
    from datamodules import JudgeDataModule
    from phudge_lightning.model.module import DEFAULT_LORA, JudgeModule

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    datamodule = JudgeDataModule(data=args.data, backbone=args.backbone, batch_size=args.batch_size,
                                              limit=args.n, max_length=args.max_length, val_fraction=0.05)
    datamodule.setup("fit")
    needed = args.steps + max(args.warmup, 1)
    if len(datamodule.train_dataloader()) < needed:
        raise SystemExit(f"phudge bench train: {len(datamodule.train_dataloader())} batches in the data, "
                         f"{needed} needed: raise --n or lower --steps")
    module = JudgeModule(backbone=args.backbone, head="regression", lora=DEFAULT_LORA, dtype=args.dtype)
    plain = PlainJudge(args.backbone, DEFAULT_LORA, getattr(torch, args.dtype)).to(device)
    optimizer = torch.optim.AdamW([p for p in plain.parameters() if p.requires_grad], lr=module.hparams.lr,
                                  weight_decay=module.hparams.weight_decay)
    phudge, baseline = [], []
    for _ in range(args.rounds):
        phudge.append(phudge_round(module, datamodule, args.steps, args.warmup))
        baseline.append(plain_round(plain, optimizer, datamodule.train_dataloader(), args.steps, args.warmup, device))
    ratios = [a / b for a, b in zip(phudge, baseline)]
    return {
        "backbone": args.backbone, "data": str(args.data), "batch_size": args.batch_size, "steps": args.steps,
        "warmup": args.warmup, "rounds": args.rounds, "dtype": args.dtype, "device": str(device),
        "threads": torch.get_num_threads(), "max_length": datamodule.max_length,
        "phudge_tokens_per_s": statistics.median(phudge), "plain_tokens_per_s": statistics.median(baseline),
        "ratio": statistics.median(ratios), "ratios": ratios,
        "load_avg": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


def format_table(result: dict):
    from rich.table import Table

    table = Table(title=f"phudge bench train: {Path(result['backbone']).name}, batch {result['batch_size']}, "
                        f"max_length {result['max_length']}, {result['dtype']}, {result['threads']} threads, "
                        f"{result['rounds']} rounds of {result['steps']} steps")
    table.add_column("")
    table.add_column("tokens/s", justify="right")
    table.add_row("phudge fit (JudgeModule + Trainer)", f"{result['phudge_tokens_per_s']:.0f}")
    table.add_row("plain peft + transformers loop", f"{result['plain_tokens_per_s']:.0f}")
    table.add_row("ratio (median of rounds)", f"{result['ratio']:.2f}")
    return table


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="phudge bench train", description=__doc__.split("\n\n")[0])
    p.add_argument("--backbone", default="smollm2-135m")
    p.add_argument("--data", default="demo", help="training rows: any source datamodules.sources reads")
    p.add_argument("--n", type=int, default=64, help="read at most this many rows")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--max-length", type=int, default=512, help="token budget of a training prompt")
    p.add_argument("--steps", type=int, default=4, help="timed steps per round")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps before them")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds; the ratio is their median")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", action="store_true", help="end with one JSON line")
    return p


def main(argv: list[str] | None = None) -> int:
    from phudge_lightning.bench import run_and_print

    return run_and_print(run, format_table, parser().parse_args(argv))
