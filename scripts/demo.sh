#!/usr/bin/env bash
# The main job on CPU: grade examples with the judge shipped in the package (no checkpoint given),
# then train a small judge of your own (all-MiniLM-L6-v2 + LoRA, regression head) on the demo set
# for 45 steps, evaluate it, and grade the same examples with it.
set -euo pipefail
cd "$(dirname "$0")/.."
run=runs/demo
rm -rf "$run"
mkdir -p "$run"
# 1. The shipped judge (phudge_lightning/judges/default: configs/judge.yaml, pooled by the mean).
phudge grade --input examples/grade.jsonl --output "$run/graded-default.jsonl"
python - "$run/graded-default.jsonl" <<'PY'
import json, sys
for row in map(json.loads, open(sys.argv[1])):
    print(f"{row['id']}  score {row['score']:.3f}  {row['response'][:70]}")
PY
# 2. Fine-tuning a judge of your own.
phudge data --data demo --backbone minilm-l6
phudge fit --config configs/cpu-minilm.yaml --trainer.default_root_dir "$run" --trainer.logger.init_args.save_dir "$run"
best=$(ls -t "$run"/tensorboard/version_*/checkpoints/best-*.ckpt | head -n 1)
echo "best checkpoint (minimum val/loss): $best"
# Validation metrics of the best judge on the held-out demo rows.
phudge validate --config configs/cpu-minilm.yaml --ckpt_path "$best" --trainer.logger false
# The paper's benchmarks, when the shared data sits beside the project.
bench=../shared/data/benchmarks
if [ -f "$bench/vicuna_eval.json" ]; then
  phudge evaluate --checkpoint "$best" --benchmark vicuna mt_bench hhh --data "$bench" --output "$run/benchmarks.json"
  phudge evaluate --baseline length --benchmark vicuna mt_bench hhh --data "$bench"
fi
phudge grade --checkpoint "$best" --input examples/grade.jsonl --output "$run/graded.jsonl"
cat "$run/graded.jsonl"
