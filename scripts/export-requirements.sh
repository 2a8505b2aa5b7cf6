#!/usr/bin/env bash
# Pinned requirements of the images, exported from uv.lock (run after `uv lock`).
#   core: gateway and job_manager;  ai: the AI services (PyTorch, easyocr, RapidOCR).
set -euo pipefail
cd "$(dirname "$0")/.."
uv=${UV:-.tools/bin/uv}
common=(--frozen --no-hashes --no-emit-workspace --all-packages --no-dev --no-header --no-annotate)
"$uv" export "${common[@]}" >docker/requirements-core.txt
"$uv" export "${common[@]}" --extra rapidocr --extra easyocr >docker/requirements-ai.txt
echo "exported docker/requirements-core.txt ($(grep -c '==' docker/requirements-core.txt) pins)," \
     "docker/requirements-ai.txt ($(grep -c '==' docker/requirements-ai.txt) pins)"
