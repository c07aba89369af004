#!/usr/bin/env bash
# tidpo's GPU check: speed, equality of the fast routes, the engines and memory, in one command (about 9 minutes).
#
#   benchmarks/gpu/run.sh OUTDIR          # on one H100/H200: every part, each in its own time budget
#   benchmarks/gpu/run.sh --cpu OUTDIR    # the same parts on a tiny model on the CPU (seconds; run by make test)
#   benchmarks/gpu/run.sh OUTDIR --parts env,speed   # a subset (a rerun of what a first run left short)
#
# Wheels fetched by benchmarks/gpu/fetch_wheels.sh (in .whl/) are installed into a private folder first when
# present (GPU mode only: the CPU mode uses the environment it is started in). See benchmarks/gpu/README.md.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CPU=""
if [[ "${1:-}" == "--cpu" ]]; then CPU="--cpu"; shift; fi
OUTDIR=${1:?usage: benchmarks/gpu/run.sh [--cpu] OUTDIR [--parts a,b]}
shift
mkdir -p "$OUTDIR"
PY=${PYTHON:-python3}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
if [[ -z "$CPU" ]] && compgen -G "$ROOT/.whl/*.whl" > /dev/null; then
  SITE=${TIDPO_GPU_SITE:-/tmp/tidpo-gpu-site}
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
    "$ROOT"/.whl/*.whl > "$OUTDIR/wheels.log" 2>&1 || echo "wheel install failed: see $OUTDIR/wheels.log"
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$ROOT/src:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" "$ROOT/benchmarks/gpu/run.py" $CPU "$OUTDIR" "$@"
