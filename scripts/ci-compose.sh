#!/usr/bin/env bash
# CI: the fleet in Docker Compose on a machine with no registry and no trusted TLS inside
# containers. Installs Docker, builds local base images and a wheelhouse, builds every image
# offline (GPU variants too: built and import-checked, not run), brings the fleet up, runs the
# HTTPS end-to-end and fault tests, and prints timings and sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
stamp() { echo "== [$(( $(date +%s) - t0 )) s] $*"; }

bash scripts/docker.sh setup
stamp "docker ready"
bash scripts/docker.sh local-bases
stamp "local base images ready"
bash scripts/wheelhouse.sh
stamp "wheelhouse ready"
t_build=$(date +%s)
OFFLINE=1 bash scripts/docker.sh images
stamp "images built in $(( $(date +%s) - t_build )) s"
bash scripts/docker.sh sizes

# GPU images cannot run here (no GPU): check that they import their engines.
for img in mediafleet/ai-base:gpu mediafleet/ocr_detection:gpu; do
  docker run --rm --entrypoint python3 "$img" -c \
    "import torch, onnxruntime, easyocr, rapidocr_onnxruntime; print('$img', 'torch', torch.__version__, 'cuda build', torch.version.cuda, 'ort', onnxruntime.__version__, onnxruntime.get_available_providers())"
done
docker run --rm --entrypoint python3 mediafleet/ocr_detection:gpu -c "import mediafleet.ocr_detection.runner, mediafleet.common.taskrun; print('ocr_detection:gpu imports its service')"

export REDIS_IMAGE=mediafleet-local/redis:7 POSTGRES_IMAGE=mediafleet-local/postgres:15
.venv/bin/pytest -m compose tests/compose -s -p no:cacheprovider
stamp "compose tests done"
