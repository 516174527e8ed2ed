#!/usr/bin/env bash
# Wheels that phudge_lightning/bench/gpu/gpu.sh needs on the device machine (Python 3.12, no package registry there):
# `datasets` and the two of its requirements that the device image lacks. Run here, from the
# repository root; .whl/ is added to .git/info/exclude so that it is never committed.
set -euo pipefail
cd "$(dirname "$0")/../../.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19
