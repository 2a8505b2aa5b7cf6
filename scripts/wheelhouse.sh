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
# Packages PyPI ships only as source (llama-cpp-python): compiled once into build/wheelhouse/native
# (portable: -DGGML_NATIVE=OFF, no -march=native), reused while the pin is unchanged; pip's wheel
# cache makes a rebuild after `rm -rf build` fast. Every image build needs them, online or not
# (images carry no compilers): `scripts/wheelhouse.sh native` builds only these.
native_wheels() {
  mkdir -p "$root/native"
  grep -hE '^llama-cpp-python==' services/*/requirements/all.txt | cut -d' ' -f1 | sort -u | while read -r pin; do
    file=$(echo "$pin" | sed -E 's/^llama-cpp-python==/llama_cpp_python-/')
    if ls "$root/native/$file"-*.whl >/dev/null 2>&1; then echo "wheelhouse/native: $pin present"; continue; fi
    start=$(date +%s)
    CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}" "${PYTHON:-python3}" -m pip wheel --quiet --disable-pip-version-check \
      --no-deps --no-binary llama-cpp-python --wheel-dir "$root/native" "$pin"
    echo "wheelhouse/native: built $pin in $(( $(date +%s) - start )) s"
  done
}
if [ "${1:-}" = native ]; then native_wheels; exit 0; fi
mkdir -p "$root/core" "$root/ai"
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
for set in torch core ai native; do
  echo "wheelhouse/$set: $(ls "$root/$set" | grep -c '\.whl$') wheels, $(du -sh "$root/$set" | cut -f1)"
done
