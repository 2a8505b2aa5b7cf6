#!/usr/bin/env bash
# Back up and restore the compose fleet's data (docs/operations.md#backups).
#   scripts/backup.sh backup [DIR]      write DIR/mediafleet-backup-<UTC time>.tar (default var/backups)
#   scripts/backup.sh restore FILE      restore FILE into this fleet (refuses one that holds media
#                                       unless FORCE=1), then start it again
# COMPOSE: the compose command with its files and options (make passes its own: project, env
# file, profiles); default `docker-compose -f docker-compose.yml --profile ai`.
#
# The archive (plain tar: the media are compressed already) holds
#   manifest.json  when, from which commit and schema, each member's size and SHA-256, the counts,
#                  and the models the fleet had (names and sizes, not the weights)
#   db.dump        pg_dump's custom format: one consistent snapshot of the database, taken first
#   media.tar      the media volume (uploads in progress left out), taken after the dump, so it
#                  holds every file the dump names
#   vectors.tar    vector_db's collections: each log copied before its snapshot (a snapshot
#                  taken in between then holds the log's records: replaying them is harmless)
#   env            only with INCLUDE_SECRETS=1: this checkout's .env (passwords, keys)
# The fleet keeps running while it is backed up. Redis is not in it: queued work lives in the
# database too, and job_manager runs again whatever was in flight.
set -euo pipefail
cd "$(dirname "$0")/.."
work=""  # the scratch folder, removed on exit (global: the EXIT trap reads it)
read -r -a COMPOSE_CMD <<<"${COMPOSE:-docker-compose -f docker-compose.yml --profile ai}"
compose() { "${COMPOSE_CMD[@]}" "$@"; }
# psql, pg_dump, pg_restore in the postgres container, with its own password (the public image
# trusts its socket, the local stand-in does not)
# shellcheck disable=SC2016  # expanded by the container's shell, not this one
pg() { compose exec -T postgres sh -c 'PGPASSWORD="$POSTGRES_PASSWORD" exec "$@"' pg "$@"; }
log() { printf '== %s\n' "$*" >&2; }
die() { printf 'backup: %s\n' "$*" >&2; exit 1; }

running() { [ -n "$(compose ps -q "$1" 2>/dev/null)" ] && [ "$(docker inspect -f '{{.State.Running}}' "$(compose ps -q "$1")")" = true ]; }

backup() {
  local dir=${1:-var/backups} stamp out start
  start=$(date +%s)
  for service in postgres gateway vector_db; do
    running "$service" || die "$service is not running: start the fleet first (make run-core-services)"
  done
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  mkdir -p "$dir"
  work=$(mktemp -d "$dir/.backup-$stamp.XXXX")
  trap '[ -z "$work" ] || rm -rf "$work"' EXIT
  pg pg_dump -U mediafleet -d mediafleet -Fc >"$work/db.dump" \
    || die "pg_dump failed (see above)"
  log "database: $(du -h "$work/db.dump" | cut -f1)"
  compose exec -T gateway tar -C /data -cf - --exclude=media/.tmp media >"$work/media.tar" \
    || die "reading the media volume failed"
  log "media: $(du -h "$work/media.tar" | cut -f1)"
  # shellcheck disable=SC2016  # a script for the container's shell
  compose exec -T vector_db sh -c '
    set -e; t=$(mktemp -d); cd /data
    for d in vectors/*/; do
      [ -d "$d" ] || continue; mkdir -p "$t/$d"
      for f in spec.json wal.log snapshot.npz; do [ ! -f "$d$f" ] || cp "$d$f" "$t/$d$f"; done
    done
    mkdir -p "$t/vectors"; tar -C "$t" -cf - vectors; rm -rf "$t"' >"$work/vectors.tar" \
    || die "reading vector_db's collections failed"
  log "vectors: $(du -h "$work/vectors.tar" | cut -f1)"
  if [ "${INCLUDE_SECRETS:-0}" = 1 ] && [ -f .env ]; then cp .env "$work/env"; chmod 600 "$work/env"; fi
  local revision media_files models
  revision=$(pg psql -U mediafleet -d mediafleet -tAc 'SELECT version_num FROM alembic_version')
  media_files=$(tar -tf "$work/media.tar" | grep -vc '/$' || true)
  models=$(models_list)
  python3 - "$work" "$stamp" "$revision" "$media_files" "$models" "$(git rev-parse HEAD 2>/dev/null || echo unknown)" <<'PY'
import hashlib, json, pathlib, sys
work, stamp, revision, media_files, models, commit = sys.argv[1:7]
def digest(p):
    h = hashlib.sha256()
    with p.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
members = sorted(p for p in pathlib.Path(work).iterdir() if p.is_file())
manifest = {
    "format": "mediafleet-backup/1",
    "created_at": stamp,
    "commit": commit,
    "schema_revision": revision.strip(),
    "media_files": int(media_files),
    "members": {p.name: {"bytes": p.stat().st_size, "sha256": digest(p)} for p in members},
    "models": [dict(zip(("path", "bytes"), line.split("\t"))) for line in models.splitlines() if line],
    "secrets_included": (pathlib.Path(work) / "env").exists(),
}
(pathlib.Path(work) / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
PY
  out="$dir/mediafleet-backup-$stamp.tar"
  local members=(manifest.json db.dump media.tar vectors.tar)
  [ ! -f "$work/env" ] || members+=(env)
  tar -C "$work" -cf "$out.part" "${members[@]}"
  mv "$out.part" "$out"
  [ ! -f "$work/env" ] || chmod 600 "$out"
  log "backup written: $out ($(du -h "$out" | cut -f1), $media_files media files, schema $revision) in $(( $(date +%s) - start )) s"
  echo "$out"
}

models_list() {  # path<TAB>bytes of each file in the models volume (from an AI service that mounts it)
  local service
  for service in ocr_detection whisper_transcriber face_reid pose_estimation clip_nsfw llm_service media_metadata; do
    if running "$service"; then
      compose exec -T "$service" sh -c 'cd /models 2>/dev/null && find . -type f -printf "%P\t%s\n" | sort' || true
      return
    fi
  done
}

restore() {
  local file=${1:?usage: scripts/backup.sh restore FILE} start
  [ -f "$file" ] || die "no such file: $file"
  start=$(date +%s)
  work=$(mktemp -d)
  trap '[ -z "$work" ] || rm -rf "$work"' EXIT
  tar -C "$work" -xf "$file" || die "$file is not a tar archive"
  [ -f "$work/manifest.json" ] || die "$file has no manifest.json: not a mediafleet backup"
  python3 - "$work" <<'PY' || die "the archive is damaged: a member's size or SHA-256 differs from its manifest"
import hashlib, json, pathlib, sys
work = pathlib.Path(sys.argv[1])
manifest = json.loads((work / "manifest.json").read_text())
assert manifest.get("format") == "mediafleet-backup/1", manifest.get("format")
for name, want in manifest["members"].items():
    p = work / name
    h = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None
    if h != want["sha256"]:
        print(f"{name}: expected {want['sha256']}, found {h}", file=sys.stderr)
        sys.exit(1)
PY
  running postgres || compose up -d postgres >/dev/null
  for _ in $(seq 1 60); do compose exec -T postgres pg_isready -U mediafleet -d mediafleet >/dev/null 2>&1 && break; sleep 1; done
  local held
  held=$(pg psql -U mediafleet -d mediafleet -tAc \
    "SELECT count(*) FROM information_schema.tables WHERE table_name = 'media'" | tr -d '[:space:]')
  if [ "$held" = 1 ]; then
    held=$(pg psql -U mediafleet -d mediafleet -tAc 'SELECT count(*) FROM media' | tr -d '[:space:]')
  else
    held=0
  fi
  if [ "$held" != 0 ] && [ "${FORCE:-0}" != 1 ]; then
    die "this fleet already holds $held media files: restore into an empty fleet, or FORCE=1 to replace its data"
  fi
  log "stopping the fleet (postgres alone comes back for the restore)"
  compose stop >/dev/null 2>&1
  compose up -d --no-deps postgres >/dev/null
  for _ in $(seq 1 60); do compose exec -T postgres pg_isready -U mediafleet -d mediafleet >/dev/null 2>&1 && break; sleep 1; done
  pg pg_restore -U mediafleet -d mediafleet --clean --if-exists --no-owner \
    <"$work/db.dump" || die "pg_restore failed (see above)"
  log "database restored (schema $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["schema_revision"])' "$work/manifest.json"))"
  compose run --rm --no-deps -T --entrypoint sh gateway -c \
    'find /data/media -mindepth 1 -delete && tar -C /data -xf -' <"$work/media.tar" >/dev/null \
    || die "writing the media volume failed"
  log "media restored"
  compose run --rm --no-deps -T --entrypoint sh vector_db -c \
    'find /data/vectors -mindepth 1 -delete && tar -C /data -xf -' <"$work/vectors.tar" >/dev/null \
    || die "writing vector_db's collections failed"
  log "vectors restored"
  compose up -d >/dev/null
  log "restored $file in $(( $(date +%s) - start )) s; the fleet is starting (make ps)"
}

case "${1:-}" in
  backup) shift; backup "$@" ;;
  restore) shift; restore "$@" ;;
  *) echo "usage: $0 backup [DIR] | restore FILE" >&2; exit 2 ;;
esac
