#!/usr/bin/env bash
# The GPU check: does this project train, resume, grade, export and serve on your GPU machine, and
# how fast is a judge there? At most 6 minutes on one H100/H200; no package registry needed.
# (a) the speed bench (gpu_bench.py: a Phi-3-mini-sized judge at 1488 tokens in bf16,
# MFU, Judge.grade_many against the bare forward, generative judging); (b) the paper's path on a tiny
# random Phi-3 (paper_path.py: fit with DeepSpeed, resume from last.ckpt, validate, grade, evaluate on
# Vicuna, export, serve one /grade, predict). One PASS/FAIL line per step, the figures at the end.
#
#   bash phudge_lightning/bench/gpu/check.sh               # on the GPU machine; logs in $OUT (default /tmp)
#   bash phudge_lightning/bench/gpu/check.sh --cpu         # anywhere: no GPU, no DeepSpeed (tests run this)
# A GPU machine without internet access that lacks some of the project's packages: run
# phudge_lightning/bench/gpu/fetch_gpu_wheels.sh where a registry is reachable and copy .whl/ over.
set -uo pipefail
cd "$(dirname "$0")/../../.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
PYTHON=${PYTHON:-python3}
CPU=0
[[ "${1:-}" == "--cpu" ]] && CPU=1
out=${OUT:-/tmp}
. phudge_lightning/bench/gpu/wheels.sh
need_modules check.sh datasets fastapi uvicorn
if [[ $CPU == 1 ]]; then
  bench=(--preset tiny --device cpu --dtype float32 --seq-len 128 --batch-sizes 2,4 --iters 1 --n 8 --generative-n 4
         --generative-batch-size 4 --max-new-tokens 8 --peak-seconds 0.1)
  paper=(--cpu --evaluate-limit 8)
  limits=(600 900)  # a CPU shared with other work is slow; the GPU budget does not apply
else
  nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader || true
  bench=(--preset phi3-mini --seq-len 1488)
  paper=()
  limits=(150 210)  # within 6 minutes, the wheels' install included
fi
"$PYTHON" -c "import torch, transformers, peft, lightning; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'lightning', lightning.__version__)"
failed=0
start=$SECONDS
timeout "${limits[0]}" "$PYTHON" phudge_lightning/bench/gpu/gpu_bench.py "${bench[@]}" --json > "$out/gpu_bench.log" 2>&1
rc=$?
grep -v '^{' "$out/gpu_bench.log" | grep -E '^ |peak' || true
if [[ $rc == 0 ]]; then echo "PASS speed bench ($((SECONDS - start)) s)"; else echo "FAIL speed bench (exit $rc, see $out/gpu_bench.log)"; failed=1; fi
start=$SECONDS
work=$(mktemp -d /tmp/phudge-paper-path.XXXXXX)
timeout "${limits[1]}" "$PYTHON" phudge_lightning/bench/gpu/paper_path.py "${paper[@]}" --workdir "$work" > "$out/paper_path.log" 2>&1
rc=$?
grep -E '^(PASS|FAIL|paper path)' "$out/paper_path.log"
if [[ $rc != 0 ]]; then echo "FAIL paper path (exit $rc after $((SECONDS - start)) s, see $out/paper_path.log)"; failed=1; fi
echo "figures:"
grep '^{' "$out/gpu_bench.log" | tail -1
grep '^{"paper_path"' "$out/paper_path.log" | tail -1
rm -rf "$work"
exit $failed
