"""Why MT-Bench-trained judges miss HHH: which cues carry over from GPT-4's scores to human pairs.

    python scripts/probe_hhh.py [--judge PREFIX]

For each cue it prints the Pearson with the mean GPT-4 score on MT-Bench (the training set) and
Vicuna, and the strict pair accuracy on HHH (overall and per subset):

- ``log_length``: log of the response's length in characters;
- ``relevance``: cosine of the embedded last user turn and the embedded response, with the
  embedded all-MiniLM-L6-v2 used as the sentence encoder it was trained to be (mean pooling,
  unit vectors, 256 tokens), no training at all;
- ``judge`` (with ``--judge PREFIX``): a judge's scores read from ``PREFIX-mt_bench.jsonl``,
  ``PREFIX-vicuna.jsonl`` and ``PREFIX-hhh.jsonl``, written by ``phudge evaluate --predictions``;
- ``stack``: y = w . cues + b, fitted by least squares on MT-Bench only, then applied to Vicuna
  and HHH: what training on MT-Bench makes of the cues together.

A cue that helps on HHH but gets a negative weight from MT-Bench is one that training on
MT-Bench teaches a judge to hold against a response.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from datamodules.backbones import load_tokenizer, resolve_backbone
from phudge_lightning.benchmarks import load_benchmark
from phudge_lightning.metrics import absolute_metrics, pair_metrics

SETS = {"mt_bench": "mt_bench_eval.json", "vicuna": "vicuna_eval.json", "hhh": "hhh_alignment_eval.json"}


def last_user_turn(instruction: str) -> str:
    # MT-Bench's second turns hold the whole dialogue: the response answers the last user turn.
    if "User:" in instruction:
        instruction = instruction.rsplit("User:", 1)[1].split("Assistant:")[0]
    return instruction.strip()


@torch.inference_mode()
def embed(model, tokenizer, texts: list[str], max_length: int = 256) -> torch.Tensor:
    """Mean of the token states over the mask, scaled to unit length (sentence-transformers' recipe)."""
    out = []
    for i in range(0, len(texts), 32):
        batch = tokenizer(texts[i:i + 32], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        states, mask = model(**batch).last_hidden_state, batch["attention_mask"].unsqueeze(-1).float()
        out.append(torch.nn.functional.normalize((states * mask).sum(1) / mask.sum(1), dim=-1))
    return torch.cat(out)


def judge_scores(prefix: str, name: str) -> np.ndarray:
    rows = [json.loads(line) for line in Path(f"{prefix}-{name}.jsonl").read_text().splitlines()]
    if "score" in rows[0]:
        return np.array([r["score"] for r in rows], dtype=float)
    return np.array([s for r in rows for s in (r["score_a"], r["score_b"])], dtype=float)


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    return absolute_metrics(x.tolist(), y.tolist())["pearson"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default="../shared/data/benchmarks")
    p.add_argument("--judge", help="PREFIX of a judge's phudge evaluate --predictions files")
    args = p.parse_args()
    from transformers import AutoModel

    path = resolve_backbone("minilm-l6")
    model, tokenizer = AutoModel.from_pretrained(path).eval(), load_tokenizer(path)
    cues, targets = {}, {}
    for name, file in SETS.items():
        bench = load_benchmark(name, str(Path(args.data_dir) / file))
        records = bench.records()
        relevance = (embed(model, tokenizer, [last_user_turn(r.instruction) for r in records])
                     * embed(model, tokenizer, [r.response for r in records])).sum(-1).numpy()
        cues[name] = {"log_length": np.log([len(r.response) for r in records]), "relevance": relevance}
        if args.judge:
            cues[name]["judge"] = judge_scores(args.judge, name)
        targets[name] = (np.array([p.label for p in bench.items]) if bench.kind == "relative"
                         else np.array([r.score for r in bench.items]))
        if name == "hhh":
            groups = [p.group for p in bench.items]  # helpful / harmless / honest / other
    names = list(cues["mt_bench"])
    design = lambda n: np.c_[[cues[n][c] for c in names]].T  # noqa: E731
    w, *_ = np.linalg.lstsq(np.c_[design("mt_bench"), np.ones(len(targets["mt_bench"]))], targets["mt_bench"], rcond=None)
    for n in SETS:
        cues[n]["stack"] = design(n) @ w[:-1]
    print("stack weights (fitted on MT-Bench):", ", ".join(f"{c} {x:+.3f}" for c, x in zip(names, w)))
    subsets = sorted(set(groups))
    print(f"{'cue':<12} {'MT-Bench r':>10} {'Vicuna r':>9} {'HHH acc':>8} " + " ".join(f"{s:>9}" for s in subsets))
    for cue in [*names, "stack"]:
        s = cues["hhh"][cue].tolist()
        # phudge evaluate's own convention: strict, a tied pair counts as wrong
        hhh = pair_metrics(targets["hhh"].tolist(), s[0::2], s[1::2], groups=groups)
        print(f"{cue:<12} {pearson(cues['mt_bench'][cue], targets['mt_bench']):>10.3f} "
              f"{pearson(cues['vicuna'][cue], targets['vicuna']):>9.3f} {hhh['accuracy']:>8.3f} "
              + " ".join(f"{hhh['accuracy_by_group'][g]:>9.3f}" for g in subsets))


if __name__ == "__main__":
    main()
