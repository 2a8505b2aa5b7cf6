#!/usr/bin/env bash
# CI: the fleet in Docker Compose on a machine with no registry and no trusted TLS inside
# containers. Installs Docker, builds local base images and a wheelhouse, builds every image
# offline (GPU variants too: built and import-checked, not run; an image whose inputs did not
# change since the last run is kept), runs the README's quick start literally in a clean copy
# (tests/compose/test_readme.py: its own fleet, then the web UI's default uploads), then brings
# the test fleet up and runs the HTTPS end-to-end, fault and browser tests; prints timings.
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
OFFLINE=1 GPU=1 bash scripts/docker.sh images
stamp "images built in $(( $(date +%s) - t_build )) s"
bash scripts/docker.sh sizes

# GPU images cannot run here (no GPU): check that each imports its runner and its CUDA builds.
for file in services/*/Dockerfile.gpu; do
  name=$(basename "$(dirname "$file")")
  docker run -i --rm --entrypoint python3 "mediafleet/$name:gpu" - "$name" <<'PY'
import importlib.util, sys
from mediafleet.common import registry
cap = registry.get(sys.argv[1])
runner = cap.build_runner()  # imports the runner module; engines load later, on a GPU
found = {}
if importlib.util.find_spec("torch"):
    import torch
    found["torch"] = f"{torch.__version__} (cuda build {torch.version.cuda})"
if importlib.util.find_spec("onnxruntime"):
    import onnxruntime
    found["onnxruntime"] = f"{onnxruntime.__version__} {onnxruntime.get_available_providers()}"
from mediafleet.common.device import cuda_problem
print(f"mediafleet/{cap.name}:gpu imports {type(runner).__name__}; {found}; CUDA: {cuda_problem() or 'usable'}")
PY
  # as a GPU worker on this machine without a GPU it must refuse to start, in one line
  if out=$(docker run --rm -e MEDIAFLEET_WORKER_DEVICE=cuda "mediafleet/$name:gpu" 2>&1); then
    echo "mediafleet/$name:gpu started as a GPU worker without a GPU: $out"; exit 1
  fi
  [ "$(printf '%s\n' "$out" | wc -l)" = 1 ] || { echo "mediafleet/$name:gpu said more than one line: $out"; exit 1; }
  echo "mediafleet/$name:gpu as a GPU worker here: $out"
done
for variant in cpu gpu; do
  for file in services/*/Dockerfile.$variant; do
    name=$(basename "$(dirname "$file")")
    docker run --rm --entrypoint python3 "mediafleet/$name:$variant" -c \
      "import importlib.util as u; print('mediafleet/$name:$variant', 'torch' if u.find_spec('torch') else 'no torch')"
  done
done

bash scripts/ui.sh browser  # Debian's Chromium for the web UI's browser tests (tests/compose/test_web_ui.py)
stamp "chromium ready"
rm -rf var/ui-e2e  # the browser tests' screenshots, and a failure's HTML and console log

status=0
# the README's quick start as a new user types it (offline: the README's two documented overrides)
MEDIAFLEET_README_OFFLINE=1 .venv/bin/pytest -m compose tests/compose/test_readme.py -s -p no:cacheprovider || status=$?
stamp "README quick start done"
export REDIS_IMAGE=mediafleet-local/redis:7 POSTGRES_IMAGE=mediafleet-local/postgres:15
# the monitoring profile's images (the fleet runs with it): public where a registry answers,
# else the stand-ins `scripts/docker.sh local-bases` built from Debian's packages
# shellcheck disable=SC2046  # NAME=image lines, one word each
export $(bash scripts/docker.sh server-images monitoring)
# -o timeout=900: the first test's setup starts the whole fleet (load models, up, healthy),
# which on 2 busy cores can pass the default 300 s per test
.venv/bin/pytest -m compose tests/compose -s -p no:cacheprovider -o timeout=900 \
  --deselect tests/compose/test_readme.py || status=$?
stamp "compose tests done"
# the fleet as a Docker Swarm stack on a single-node swarm (after the compose fleet is down)
.venv/bin/pytest -m swarm tests/swarm -s -p no:cacheprovider -o timeout=1200 || status=$?
stamp "swarm tests done"
ls var/ui-e2e 2>/dev/null | sed 's/^/== web UI artifact: var\/ui-e2e\//' || true
# the images and their layer cache stay for the next run (unchanged images are not rebuilt);
# scripts/docker.sh prunes them itself when the disk runs short
echo "== docker disk: $(df -Pk /var/lib/docker | awk 'NR==2 {print int($4 / 1048576)}') GB free"
exit "$status"
