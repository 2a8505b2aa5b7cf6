#!/usr/bin/env bash
# Docker side of mediafleet.
#   scripts/docker.sh setup            install Docker + Compose (Debian packages) and start dockerd if none answers
#   scripts/docker.sh local-bases      build base images locally (debootstrap) where no registry is reachable
#   scripts/docker.sh images           build the images (OFFLINE=1: local bases + build/wheelhouse, no index;
#                                      GPU=1: the :gpu variants too; an image whose inputs did not change
#                                      since it was built is kept: REBUILD=1 builds anyway)
#   scripts/docker.sh server-images [monitoring]
#                                      print REDIS_IMAGE=/POSTGRES_IMAGE= lines (monitoring: the monitoring
#                                      profile's PROMETHEUS_IMAGE=... lines): the public images where
#                                      they are present or can be pulled, else the local stand-ins
#   scripts/docker.sh sizes            print the images' sizes
#   scripts/docker.sh load-models DIR [PROJECT]
#                                      copy provisioned weights (mediafleet models pull --models-dir DIR)
#                                      into the fleet's `models` volume (PROJECT: compose project name,
#                                      default COMPOSE_PROJECT_NAME or this folder's name)
set -euo pipefail
cd "$(dirname "$0")/.."

LOCAL_BASE=mediafleet-local/python:3.11-bookworm
TAG=${MEDIAFLEET_TAG:-latest}

log() { printf '== %s\n' "$*" >&2; }

# A docker CLI that can use BuildKit (RUN --mount): buildx, or the Debian client's built-in BuildKit.
docker_cli() {
  if docker buildx version >/dev/null 2>&1; then echo docker; return; fi
  if [ -x /usr/bin/docker ] && /usr/bin/docker version --format '{{.Client.Version}}' 2>/dev/null | grep -q '^20\.'; then
    echo /usr/bin/docker; return
  fi
  echo docker
}

setup() {
  local need=()
  command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
  command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 || need+=(docker-compose)
  command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
  if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    local sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
    DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
  fi
  if ! docker info >/dev/null 2>&1; then
    log "starting dockerd"
    mkdir -p var/log
    nohup dockerd >var/log/dockerd.log 2>&1 &
    for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || { tail -20 var/log/dockerd.log >&2; exit 1; }
  fi
  docker version --format 'docker server {{.Server.Version}}, client {{.Client.Version}}'
}

local_bases() {
  if ! docker image inspect "$LOCAL_BASE" >/dev/null 2>&1; then
    log "debootstrap bookworm (minbase + python3) -> $LOCAL_BASE"
    local root; root=$(mktemp -d)
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$root" \
      http://deb.debian.org/debian >/dev/null
    tar -C "$root" -c . | docker import -c 'ENV LANG=C.UTF-8' - "$LOCAL_BASE" >/dev/null
    rm -rf "$root"
  fi
  local cli; cli=$(docker_cli)
  DOCKER_BUILDKIT=1 $cli build -q -f docker/local/redis.Dockerfile -t mediafleet-local/redis:7 . >/dev/null
  DOCKER_BUILDKIT=1 $cli build -q -f docker/local/postgres.Dockerfile -t mediafleet-local/postgres:15 . >/dev/null
  # the monitoring profile's stand-ins (Debian's prometheus and exporter packages)
  local target
  for target in prometheus:2 redis-exporter:1 postgres-exporter:0 nginx-exporter:0 blackbox-exporter:0; do
    DOCKER_BUILDKIT=1 $cli build -q -f docker/local/monitoring.Dockerfile --target "${target%%:*}" \
      -t "mediafleet-local/$target" . >/dev/null
  done
  log "local bases ready: $LOCAL_BASE, mediafleet-local/{redis:7,postgres:15} and the monitoring stand-ins"
}

build() {  # dockerfile tag [build-args...]
  local file=$1 tag=$2; shift 2
  local start inputs; start=$(date +%s)
  # skip an image built from exactly these inputs (scripts/image-inputs.py: Dockerfile, build
  # arguments, base image ids, the context files it reads)
  inputs=$(python3 scripts/image-inputs.py "$file" "${COMMON_ARGS[@]}" "$@")
  if [ "${REBUILD:-0}" != 1 ] && \
     [ "$(docker image inspect -f '{{index .Config.Labels "org.mediafleet.inputs"}}' "$tag" 2>/dev/null)" = "$inputs" ]; then
    log "$tag up to date (inputs $inputs)"
    return
  fi
  DOCKER_BUILDKIT=1 $CLI build --progress=plain -f "$file" -t "$tag" --label "org.mediafleet.inputs=$inputs" \
    "${COMMON_ARGS[@]}" "$@" . \
    >"var/log/build-${tag//[\/:]/_}.log" 2>&1 || { tail -40 "var/log/build-${tag//[\/:]/_}.log" >&2; base_hint "$file"; exit 1; }
  log "built $tag in $(( $(date +%s) - start )) s"
  # BuildKit keeps each build's layers in its cache besides the image store: on a short disk,
  # drop them (not the transferred contexts, which the next build reuses)
  if [ "$(free_gb)" -lt "${PRUNE_BELOW_GB:-12}" ]; then
    docker builder prune -af --filter type=regular >/dev/null 2>&1 || true
    log "$(free_gb) GB free after pruning the layer cache"
  fi
}

# After a failed build: when a public base image cannot be had, say what to do instead.
base_hint() {
  if [ "${OFFLINE:-0}" != 1 ] && grep -q 'PYTHON_BASE\|NGINX_BASE' "$1" && ! bases_reachable; then
    log "the public base images (python:3.11-slim-bookworm, debian:bookworm-slim) cannot be pulled here"
    log "no registry? build from local bases and a wheelhouse instead:  OFFLINE=1 make images"
  fi
}

bases_reachable() {
  local image
  for image in python:3.11-slim-bookworm debian:bookworm-slim; do
    docker image inspect "$image" >/dev/null 2>&1 && continue
    timeout 60 docker pull -q "$image" >/dev/null 2>&1 || return 1
  done
}

free_gb() { df -Pk /var/lib/docker 2>/dev/null | awk 'NR==2 {print int($4 / 1048576)}'; }

images() {
  mkdir -p var/log
  # Online builds start FROM the public python/debian images: say so before a long build fails on them.
  if [ "${OFFLINE:-0}" != 1 ] && ! bases_reachable; then
    log "the public base images (python:3.11-slim-bookworm, debian:bookworm-slim) cannot be pulled:"
    log "no registry is reachable from this host. Build from local bases and a wheelhouse instead:"
    log "    OFFLINE=1 make images"
    exit 1
  fi
  # Superseded images and their build cache pile up (each PyTorch layer is ~6 GB): free them
  # first when the disk is short, so a build never dies half-way with "no space left on device".
  docker image prune -f >/dev/null 2>&1 || true
  # A cold build of the CPU images took 36.5 GB here (2026-12-06; GPU=1 adds ~5 GB); a warm one
  # adds a few (one image's new layers: 6 GB at most, the PyTorch layer). Below 15 GB free, drop
  # the cache and the previous images first; after a build, below 12 GB (PRUNE_BELOW_GB), the
  # layer cache (which is what makes a rebuild after a code change take seconds, not a minute).
  if [ "$(free_gb)" -lt 15 ]; then
    log "$(free_gb) GB free: pruning the docker build cache and the fleet's previous images"
    docker builder prune -af >/dev/null 2>&1 || true
    # the images this build replaces (never the mediafleet-local/* stand-ins and bases)
    docker images --format '{{.Repository}}:{{.Tag}}' | grep '^mediafleet/' | xargs -r docker rmi -f >/dev/null 2>&1 || true
    log "$(free_gb) GB free after pruning"
  fi
  CLI=$(docker_cli)
  COMMON_ARGS=()
  local torch_index=https://download.pytorch.org/whl/cpu
  mkdir -p build/wheelhouse/core build/wheelhouse/ai build/wheelhouse/torch  # bind-mounted, empty online
  bash scripts/wheelhouse.sh native  # source-only packages (llama-cpp-python), compiled once per version and flags
  if [ "${OFFLINE:-0}" = 1 ]; then
    [ -n "$(ls build/wheelhouse/core/*.whl 2>/dev/null | head -1)" ] || { log "no wheels: run scripts/wheelhouse.sh"; exit 1; }
    COMMON_ARGS=(--build-arg "PYTHON_BASE=$LOCAL_BASE" --build-arg "NGINX_BASE=$LOCAL_BASE"
                 --build-arg "PIP_ARGS=--no-index --find-links /wheels")
    torch_index=""  # the wheelhouse holds PyPI's default torch build
  fi
  local variants=(cpu); [ "${GPU:-0}" = 1 ] && variants+=(gpu)
  build docker/ai-base/Dockerfile mediafleet/ai-base
  # the shared PyTorch layer, when a capability image starts FROM it
  if grep -qs 'mediafleet/ai-torch' services/*/Dockerfile.*; then
    if [ -z "$torch_index" ]; then  # offline: the wheelhouse's PyPI build serves both variants
      build docker/ai-torch/Dockerfile mediafleet/ai-torch:cpu --build-arg TORCH_INDEX_URL=
      docker tag mediafleet/ai-torch:cpu mediafleet/ai-torch:gpu
    else
      build docker/ai-torch/Dockerfile mediafleet/ai-torch:cpu --build-arg "TORCH_INDEX_URL=$torch_index"
      [ "${GPU:-0}" = 1 ] && build docker/ai-torch/Dockerfile mediafleet/ai-torch:gpu --build-arg TORCH_INDEX_URL=
    fi
  fi
  # Redis with its ACL users and TLS listener, FROM the public image or the local stand-in
  build services/redis/Dockerfile "mediafleet/redis:$TAG" \
    --build-arg "REDIS_BASE=${REDIS_IMAGE:-$(server_images | sed -n 's/^REDIS_IMAGE=//p')}"
  build services/gateway/Dockerfile "mediafleet/gateway:$TAG"
  build services/job_manager/Dockerfile "mediafleet/job_manager:$TAG"
  build services/vector_db/Dockerfile "mediafleet/vector_db:$TAG"
  # every capability folder with Dockerfiles: mediafleet/<name>:cpu (and :gpu with GPU=1)
  local variant file name
  for variant in "${variants[@]}"; do
    for file in services/*/Dockerfile."$variant"; do
      [ -e "$file" ] || continue
      name=$(basename "$(dirname "$file")")
      if [ "$variant" = cpu ]; then
        build "$file" "mediafleet/$name:cpu" --build-arg "TORCH_INDEX_URL=$torch_index"
      else
        build "$file" "mediafleet/$name:gpu"
      fi
    done
  done
  bash scripts/ui.sh build  # the web UI's static files, which the nginx image copies
  build services/nginx/Dockerfile "mediafleet/nginx:$TAG"
  # Keep the layer cache for the next build, drop the copies of the build context (GBs of wheels)
  # and the images these builds replaced.
  $CLI builder prune -f --filter type=source.local >/dev/null 2>&1 || true
  docker image prune -f >/dev/null 2>&1 || true
  log "$(free_gb) GB free on the docker disk"
}

server_images() {  # [monitoring]: the public images where they can be had, else the local stand-ins
  local pairs=("REDIS_IMAGE redis:7.2-bookworm mediafleet-local/redis:7"
               "POSTGRES_IMAGE postgres:16-bookworm mediafleet-local/postgres:15")
  if [ "${1:-}" = monitoring ]; then  # the versions nearest Debian bookworm's packages
    pairs=("PROMETHEUS_IMAGE prom/prometheus:v2.42.0 mediafleet-local/prometheus:2"
           "REDIS_EXPORTER_IMAGE oliver006/redis_exporter:v1.45.0 mediafleet-local/redis-exporter:1"
           "POSTGRES_EXPORTER_IMAGE quay.io/prometheuscommunity/postgres-exporter:v0.11.1 mediafleet-local/postgres-exporter:0"
           "NGINX_EXPORTER_IMAGE nginx/nginx-prometheus-exporter:0.11.0 mediafleet-local/nginx-exporter:0"
           "BLACKBOX_EXPORTER_IMAGE prom/blackbox-exporter:v0.23.0 mediafleet-local/blackbox-exporter:0")
  fi
  local pair
  for pair in "${pairs[@]}"; do
    set -- $pair
    if docker image inspect "$2" >/dev/null 2>&1 || timeout 60 docker pull -q "$2" >/dev/null 2>&1; then
      echo "$1=$2"
    else
      docker image inspect "$3" >/dev/null 2>&1 || local_bases >&2
      echo "$1=$3"
    fi
  done
}

sizes() {
  docker image ls --format '{{.Repository}}:{{.Tag}}\t{{.Size}}' | grep -E '^mediafleet(-local)?/' | sort
}

load_models() {  # DIR [PROJECT]: the compose `models` volume gets DIR's files (AI services mount it read-only)
  local src=${1:?usage: $0 load-models DIR [PROJECT]}
  local project=${2:-${COMPOSE_PROJECT_NAME:-$(basename "$PWD")}}
  local volume="${project}_models"
  [ -d "$src" ] || { log "no such directory: $src"; exit 2; }
  docker volume inspect "$volume" >/dev/null 2>&1 || docker volume create \
    --label com.docker.compose.project="$project" --label com.docker.compose.volume=models "$volume" >/dev/null
  docker run --rm --user 0 --entrypoint sh -v "$volume:/models" -v "$(cd "$src" && pwd):/src:ro" mediafleet/ai-base \
    -c 'cp -r /src/. /models/ && rm -rf /models/.tmp && chmod -R a+rX /models && du -sh /models'
  log "weights from $src are in volume $volume"
}

case "${1:-}" in
  setup) setup ;;
  local-bases) local_bases ;;
  server-images) server_images "${2:-}" ;;
  images) images ;;
  sizes) sizes ;;
  load-models) shift; load_models "$@" ;;
  *) echo "usage: $0 setup|local-bases|server-images [monitoring]|images|sizes|load-models DIR [PROJECT]" >&2; exit 2 ;;
esac
