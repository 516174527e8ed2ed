#!/usr/bin/env bash
# Wheels that phudge_lightning/bench/gpu/gpu.sh and check.sh need on a GPU machine without internet
# access (Python 3.12) whose Python has torch, transformers, peft and lightning: `datasets` and the two of
# its requirements that such images often lack, and `phudge serve`'s stack (fastapi, uvicorn and theirs):
# check.sh installs them after the machine's own packages on the path, so its versions win where it has
# them. Run where a registry is reachable, from the repository root, then copy .whl/ to the GPU machine;
# .whl/ is added to .git/info/exclude so that it is never committed.
set -euo pipefail
cd "$(dirname "$0")/../../.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 \
  fastapi==0.165.0 starlette==1.10.0 uvicorn==0.54.0 h11==0.16.0 anyio==4.16.0 annotated-doc==0.0.7 \
  opentelemetry-api==1.45.2 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
