#!/usr/bin/env bash
# Pinned requirements of the images, exported from uv.lock (run after `uv lock`).
#   core: gateway and job_manager;  ai: the AI services (PyTorch, easyocr, RapidOCR).
set -euo pipefail
cd "$(dirname "$0")/.."
uv=${UV:-.tools/bin/uv}
out=${OUT_DIR:-docker}
common=(--frozen --no-hashes --no-emit-workspace --all-packages --no-dev --no-header --no-annotate)
"$uv" export "${common[@]}" >"$out/requirements-core.txt"
"$uv" export "${common[@]}" --extra rapidocr --extra easyocr >"$out/requirements-ai.txt"
echo "exported $out/requirements-core.txt ($(grep -c '==' "$out/requirements-core.txt") pins)," \
     "$out/requirements-ai.txt ($(grep -c '==' "$out/requirements-ai.txt") pins)"
