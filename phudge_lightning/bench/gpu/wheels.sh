# Sourced by gpu.sh and check.sh (from the project root): a GPU machine's Python may have torch,
# transformers, peft and lightning but not every package the project imports; those come from
# the wheels copied into .whl/ (written by fetch_gpu_wheels.sh), installed only when an import fails.
need_modules() {  # the calling script's name, then the modules it imports
  local caller=$1; shift
  local imports
  imports=$(IFS=,; echo "$*")
  "$PYTHON" -c "import $imports" 2>/dev/null && return 0
  if ! ls .whl/*.whl >/dev/null 2>&1; then
    echo "$caller: $* missing and no wheels in .whl/: pip install the project, or run phudge_lightning/bench/gpu/fetch_gpu_wheels.sh where a registry is reachable and copy .whl/ here" >&2
    exit 2
  fi
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="$PYTHONPATH:/tmp/site"
}
