#!/usr/bin/env bash
# Offline image builds: download every wheel the images install into build/wheelhouse
# (core/: gateway, job_manager, vector_db and the build backend; ai/: every capability's engines, the
# union of services/*/requirements/all.txt),
# for CPython 3.11 on glibc x86_64 (Debian bookworm ships 3.11.2: markers are evaluated for it), so `docker build` installs with
# `pip install --no-index --find-links` and never reaches a package index.
# Air-gapped servers: run this where PyPI is reachable and copy build/wheelhouse over.
set -euo pipefail
cd "$(dirname "$0")/.."
root=build/wheelhouse
# Packages PyPI ships only as source (llama-cpp-python): compiled once per version and build flags
# (CMAKE_ARGS, default -DGGML_NATIVE=OFF: portable, no -march=native) into a cache outside the
# clone (~/.cache/mediafleet/native-wheels/<version+flags hash>/, MEDIAFLEET_NATIVE_CACHE), then
# linked into build/wheelhouse/native, which the images install from. A fresh clone, `rm -rf build`
# or another checkout reuses it; other flags (-DGGML_CUDA=on) build and keep their own wheel.
# Every image build needs them, online or not (images carry no compilers):
# `scripts/wheelhouse.sh native` builds only these.
native_wheels() {
  mkdir -p "$root/native"
  local cache_root=${MEDIAFLEET_NATIVE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mediafleet/native-wheels}
  local flags=${CMAKE_ARGS:--DGGML_NATIVE=OFF}
  grep -hE '^llama-cpp-python==' services/*/requirements/all.txt | cut -d' ' -f1 | sort -u | while read -r pin; do
    local key cache file start
    key=$(printf '%s|%s|%s' "$pin" "$flags" "$(uname -m)" | sha256sum | cut -c1-16)
    cache="$cache_root/$key"
    file=$(echo "$pin" | sed -E 's/^llama-cpp-python==/llama_cpp_python-/')
    if ls "$cache/$file"-*.whl >/dev/null 2>&1; then
      echo "wheelhouse/native: $pin ($flags) from the cache $cache"
    else
      start=$(date +%s)
      mkdir -p "$cache"
      # --no-cache-dir: pip's own wheel cache would hand back a wheel built with other flags
      CMAKE_ARGS="$flags" "${PYTHON:-python3}" -m pip wheel --quiet --disable-pip-version-check --no-cache-dir \
        --no-deps --no-binary llama-cpp-python --wheel-dir "$cache" "$pin"
      echo "wheelhouse/native: built $pin ($flags) in $(( $(date +%s) - start )) s -> $cache"
    fi
    rm -f "$root/native/$file"-*.whl
    ln "$cache/$file"-*.whl "$root/native/" 2>/dev/null || cp "$cache/$file"-*.whl "$root/native/"
  done
}
if [ "${1:-}" = native ]; then native_wheels; exit 0; fi
mkdir -p "$root/core" "$root/ai" "$root/torch"
summary() {
  for set in torch core ai native; do
    echo "wheelhouse/$set: $(ls "$root/$set" | grep -c '\.whl$') wheels, $(du -sh "$root/$set" | cut -f1)"
  done
}
# The downloads are kept outside the clone, keyed by what decides them (this script and every
# requirement set it reads): a fresh clone with the same pins links them in instead of fetching
# ~6.5 GB again (MEDIAFLEET_WHEELHOUSE_CACHE; the two newest keys are kept).
cache_root=${MEDIAFLEET_WHEELHOUSE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mediafleet/wheelhouse}
key=$(cat "$0" docker/requirements-*.txt services/*/requirements/all.txt | sha256sum | cut -c1-16)
link_sets() {  # from to: hard links (copies across filesystems) of every wheel
  for set in torch core ai; do
    mkdir -p "$2/$set"
    for f in "$1/$set"/*.whl; do
      [ -e "$f" ] && { [ -e "$2/$set/$(basename "$f")" ] || ln "$f" "$2/$set/" 2>/dev/null || cp "$f" "$2/$set/"; }
    done
  done
}
if [ -f "$cache_root/$key/.complete" ]; then
  link_sets "$cache_root/$key" "$root"
  echo "wheelhouse: pins unchanged, linked from $cache_root/$key"
  native_wheels
  summary
  exit 0
fi
py=${PYTHON:-python3}
ai_reqs=$(mktemp)
cat services/*/requirements/all.txt | sort -u >"$ai_reqs"
ort=$(grep -E '^onnxruntime==' "$ai_reqs" | cut -d= -f3 | cut -d' ' -f1 | head -1)
# Every manylinux tag Debian bookworm's glibc (2.36) accepts.
platforms=(--platform linux_x86_64 --platform any --platform manylinux2014_x86_64)
for minor in $(seq 5 36); do platforms+=(--platform "manylinux_2_${minor}_x86_64"); done
dl() {
  "$py" -m pip download --quiet --disable-pip-version-check --dest "$out" --only-binary=:all: \
    --python-version 3.11.2 --implementation cp --abi cp311 --abi abi3 --abi none "${platforms[@]}" "$@" \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}
# pip evaluates environment markers for the host interpreter, not --python-version:
# resolve them here for Debian bookworm's CPython 3.11.2 on Linux x86_64.
resolve() {
  "$py" - "$1" <<'PY'
import sys
from pip._vendor.packaging.requirements import Requirement
env = {"python_full_version": "3.11.2", "python_version": "3.11", "sys_platform": "linux",
       "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython",
       "platform_python_implementation": "CPython", "os_name": "posix", "extra": ""}
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if not line:
        continue
    req = Requirement(line)
    if req.marker is None or req.marker.evaluate(env):
        req.marker = None
        print(req)
PY
}
# PyTorch and its dependencies first, alone in torch/ (the shared image layer docker/ai-torch binds
# only this folder, so new wheels of a capability do not rebuild it), then hard-linked into ai/
mkdir -p "$root/torch"
no_deps="facenet-pytorch"  # its metadata pins torch<2.3, numpy<2 (root pyproject: dependency-metadata)
native="llama-cpp-python"  # sdist only on PyPI: built here (native_wheels), never downloaded
target=$(mktemp); resolve docker/requirements-torch.txt >"$target"
out=$root/torch dl -r "$target"; rm -f "$target"
for f in "$root"/torch/*.whl; do [ -e "$root/ai/$(basename "$f")" ] || ln "$f" "$root/ai/" 2>/dev/null || cp "$f" "$root/ai/"; done
for set in core ai; do
  target=$(mktemp)
  if [ "$set" = core ]; then
    cat docker/requirements-core.txt docker/requirements-vector-db.txt | sort -u >"$target.in"
    resolve "$target.in" >"$target"; rm -f "$target.in"
  else
    # packages whose declared pins contradict the lock (installed --no-deps, see the Dockerfiles)
    resolve "$ai_reqs" | grep -vE "^($no_deps|$native)==" >"$target"
    grep -E "^($no_deps)==" "$ai_reqs" | cut -d' ' -f1 | while read -r pin; do out=$root/ai dl --no-deps "$pin"; done
  fi
  out=$root/$set dl -r "$target"
  rm -f "$target"
done
rm -f "$ai_reqs"
# GPU images swap ONNX Runtime for its CUDA build
[ -z "$ort" ] || out=$root/ai dl "onnxruntime-gpu==${ort}"
out=$root/core dl hatchling pip                # build backend of the project's own packages
native_wheels
rm -rf "$cache_root/$key" && link_sets "$root" "$cache_root/$key" && touch "$cache_root/$key/.complete"
ls -1dt "$cache_root"/*/ 2>/dev/null | tail -n +3 | xargs -r rm -rf  # the two newest keys stay
summary
