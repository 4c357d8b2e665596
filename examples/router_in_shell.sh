#!/bin/sh
# The product page's shell pattern: a script asks DevPulse where each job goes, checks that a
# local model fits in memory before loading it, and keeps `devpulse babysit` running beside
# it so idle models never starve the machine.
#
#   python -m tests.rig.serve --port 8080 -- sh examples/router_in_shell.sh
#
# MODEL_MB is the memory the local model needs (a GGUF file or an Ollama model name works
# too); TARGET_FREE_MB is what babysit keeps free; BABYSIT_LOG receives its JSON events.
set -eu

MODEL_MB=${MODEL_MB:-500}
TARGET_FREE_MB=${TARGET_FREE_MB:-256}
BABYSIT_LOG=${BABYSIT_LOG:-babysit.jsonl}

devpulse babysit --target-free-mb "$TARGET_FREE_MB" --json >"$BABYSIT_LOG" &
babysit=$!
trap 'kill "$babysit" 2>/dev/null || true; wait "$babysit" 2>/dev/null || true' EXIT

use_local() { devpulse ask --max-tokens 32 "$1"; }
use_cloud_or_queue() { echo "queued for later: $1"; }

for prompt in \
    "Summarize in one line: the build is green again." \
    "Design a multi-step migration plan for our billing system across three services"; do
    side=$(devpulse route "$prompt")
    echo "== $side: $prompt"
    if [ "$side" = cloud ]; then
        devpulse ask --max-tokens 32 "$prompt" || use_cloud_or_queue "$prompt"
    elif devpulse ai --before-load "$MODEL_MB"; then
        use_local "$prompt"
    else
        use_cloud_or_queue "$prompt"
    fi
done
