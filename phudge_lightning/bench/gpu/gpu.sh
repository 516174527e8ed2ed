#!/usr/bin/env bash
# The speed half of the GPU check (check.sh runs it first); about 2 to 3
# minutes on an H100 (a 5-minute timeout guards it). A Phi-3-mini-sized judge with random weights
# (Phi3Config, bf16) at the paper's 1488 tokens: judgments/s and MFU of the forward at batch
# 8/16/32 and of Judge.grade_many, beside greedy generative judging on the same weights
# (see phudge_lightning/bench/gpu/gpu_bench.py). Aims: MFU >= 40%, >= 20x generative.
#
#   bash phudge_lightning/bench/gpu/gpu.sh                       # on the GPU machine, from the repository root
#   bash phudge_lightning/bench/gpu/gpu.sh --batch-sizes 16,32   # extra options go to phudge_lightning/bench/gpu/gpu_bench.py
#
# On a GPU machine without internet access whose Python has torch, transformers, peft and lightning
# but not `datasets` (imported by `datamodules`): fetch the wheels where a registry is reachable with
# `bash phudge_lightning/bench/gpu/fetch_gpu_wheels.sh` (writes .whl/, which git ignores) and copy
# .whl/ over. The log lands in $OUT (default /tmp).
set -euo pipefail
cd "$(dirname "$0")/../../.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
PYTHON=${PYTHON:-python3}
. phudge_lightning/bench/gpu/wheels.sh
need_modules phudge_lightning/bench/gpu/gpu.sh datasets
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader || true
"$PYTHON" -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)"
log=${OUT:-/tmp}/gpu_bench.log
timeout 300 "$PYTHON" phudge_lightning/bench/gpu/gpu_bench.py --preset phi3-mini --seq-len 1488 --json "$@" 2>&1 | tee "$log"
