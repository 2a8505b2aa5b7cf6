#!/usr/bin/env bash
# Pinned requirements of the images, exported from uv.lock (run after `uv lock`).
#   docker/requirements-core.txt         gateway and job_manager
#   services/<cap>/requirements/<set>.txt each capability image: base (no extra), one per extra, all
# An AI image installs only its capability's set: RapidOCR-only OCR carries no PyTorch.
set -euo pipefail
cd "$(dirname "$0")/.."
uv=${UV:-.tools/bin/uv}
out=${OUT_DIR:-.}
common=(--frozen --no-hashes --no-emit-workspace --no-dev --no-header --no-annotate)
mkdir -p "$out/docker"
"$uv" export "${common[@]}" --package mediafleet-gateway >"$out/docker/requirements-core.txt.gw"
"$uv" export "${common[@]}" --package mediafleet-job-manager >"$out/docker/requirements-core.txt.jm"
sort -u "$out/docker/requirements-core.txt.gw" "$out/docker/requirements-core.txt.jm" >"$out/docker/requirements-core.txt"
rm -f "$out/docker/requirements-core.txt."{gw,jm}
echo "docker/requirements-core.txt: $(grep -c '==' "$out/docker/requirements-core.txt") pins"
for pyproject in services/*/pyproject.toml; do
  grep -q '"mediafleet.capabilities"' "$pyproject" || continue
  dir=$(dirname "$pyproject"); name=$(basename "$dir")
  package=$(sed -nE 's/^name = "(.*)"/\1/p' "$pyproject" | head -1)
  mkdir -p "$out/$dir/requirements"
  "$uv" export "${common[@]}" --package "$package" >"$out/$dir/requirements/base.txt"
  extras=$(python3 -c "import sys, tomllib; print(' '.join(tomllib.load(open(sys.argv[1], 'rb'))['project'].get('optional-dependencies', {})))" "$pyproject")
  for extra in $extras; do
    "$uv" export "${common[@]}" --package "$package" --extra "$extra" >"$out/$dir/requirements/$extra.txt"
  done
  "$uv" export "${common[@]}" --package "$package" --all-extras >"$out/$dir/requirements/all.txt"
  echo "$dir/requirements: $(cd "$out/$dir/requirements" && for f in *.txt; do printf '%s (%s pins) ' "$f" "$(grep -c '==' "$f")"; done)"
done
