#!/usr/bin/env bash
# Pinned requirements of the images, exported from uv.lock (run after `uv lock`).
#   docker/requirements-core.txt         gateway and job_manager
#   docker/requirements-vector-db.txt    vector_db (FAISS)
#   services/<cap>/requirements/<set>.txt each capability image: base (no extra), one per extra, all
#   docker/requirements-torch.txt        the shared PyTorch layer (docker/ai-torch): torch, torchvision and
#                                        their dependencies, pinned as in the capabilities' sets
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
"$uv" export "${common[@]}" --package mediafleet-vector-db >"$out/docker/requirements-vector-db.txt"
echo "docker/requirements-vector-db.txt: $(grep -c '==' "$out/docker/requirements-vector-db.txt") pins"
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
# torch + torchvision and everything they depend on (uv.lock's graph), with the pins and markers of the sets above
python3 - "$out" <<'PY'
import pathlib, re, sys, tomllib
out = pathlib.Path(sys.argv[1])
lock = tomllib.loads(pathlib.Path("uv.lock").read_text())
deps = {p["name"]: [d["name"] for d in p.get("dependencies", [])] for p in lock["package"]}
closure, todo = set(), ["torch", "torchvision"]
while todo:
    name = todo.pop()
    if name not in closure and name in deps:
        closure.add(name)
        todo.extend(deps[name])
lines = set()
for f in sorted(out.glob("services/*/requirements/all.txt")):
    for line in f.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+)==", line)
        if m and re.sub(r"[-_.]+", "-", m.group(1).lower()) in closure:
            lines.add(line)
target = out / "docker" / "requirements-torch.txt"
target.write_text("".join(f"{line}\n" for line in sorted(lines)))
print(f"docker/requirements-torch.txt: {len(lines)} pins")
PY
