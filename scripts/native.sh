#!/usr/bin/env bash
# The fleet as native local processes: pid files in var/run, logs in var/log.
#   scripts/native.sh start core|ai   |   stop   |   ps
# Settings come from the environment or .env (see .env.example); defaults run on
# SQLite with Redis on 127.0.0.1:6379.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=var/run; LOG=var/log; mkdir -p "$RUN" "$LOG"
[ -f .env ] && set -a && . ./.env && set +a
REDIS_URL=${MEDIAFLEET_REDIS_URL:-redis://127.0.0.1:6379/0}
REDIS_PORT=$(echo "$REDIS_URL" | sed -E 's#.*:([0-9]+)/?.*#\1#')

# Each process runs under scripts/supervise.sh, which starts it again when it dies; the pid
# file holds the supervisor's pid. "Running" means that pid is alive *and* is this
# supervisor (a pid file left by a crash may name a pid the system gave to something else).
running() {
  [ -f "$RUN/$1.pid" ] || return 1
  local pid; pid=$(cat "$RUN/$1.pid")
  kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "supervise.sh $1 "
}

launch() {  # name command...
  local name=$1; shift
  if running "$name"; then echo "$name already running (pid $(cat "$RUN/$name.pid"))"; return; fi
  rm -f "$RUN/$name.stop"
  nohup scripts/supervise.sh "$name" "$RUN/$name.stop" "$@" >>"$LOG/$name.log" 2>&1 &
  echo $! >"$RUN/$name.pid"
  echo "started $name (pid $!, supervised, log $LOG/$name.log)"
}

halt() {  # name: stop the supervisor and its process, wait until both are gone
  local pid; pid=$(cat "$RUN/$1.pid")
  if running "$1"; then
    kill "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    echo "stopped $1"
  fi
  rm -f "$RUN/$1.pid"
}

wait_ready() {  # name url
  for _ in $(seq 1 120); do
    if curl -fsS "$2" >/dev/null 2>&1; then echo "$1 ready: $2"; return 0; fi
    running "$1" || { echo "$1 exited; see $LOG/$1.log" >&2; tail -n 20 "$LOG/$1.log" >&2; return 1; }
    sleep 0.5
  done
  echo "$1 not ready after 60 s; see $LOG/$1.log" >&2; return 1
}

case "${1:-}" in
  start)
    case "${2:-}" in
      core)
        if ! redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
          launch redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$PWD/var" --appendonly yes
        fi
        # gateway and job_manager find vector_db here (embeddings, semantic search, /similar)
        export MEDIAFLEET_VECTOR_DB_URL=${MEDIAFLEET_VECTOR_DB_URL:-http://127.0.0.1:${VECTOR_DB_HTTP_PORT:-8103}}
        # ... and the LLM (/v1/llm, /v1/ask)
        export MEDIAFLEET_LLM_URL=${MEDIAFLEET_LLM_URL:-http://127.0.0.1:${LLM_HTTP_PORT:-8115}}
        launch gateway .venv/bin/mediafleet-gateway
        launch job_manager .venv/bin/mediafleet-job-manager
        VECTOR_DB_DATA_DIR=${VECTOR_DB_DATA_DIR:-$PWD/var/vectors} launch vector_db .venv/bin/mediafleet-vector-db
        wait_ready gateway "http://127.0.0.1:${GATEWAY_PORT:-8000}/readyz"
        wait_ready job_manager "http://127.0.0.1:${JOB_MANAGER_HTTP_PORT:-8102}/readyz"
        wait_ready vector_db "http://127.0.0.1:${VECTOR_DB_HTTP_PORT:-8103}/readyz"
        ;;
      ai)  # every installed capability (mediafleet-service --list: name queue port env-prefix)
        # alive is enough to go on: a capability whose weights are not provisioned runs but is
        # not ready, and says why (its jobs wait in the queue; the others serve)
        while read -r name _ port prefix; do
          var="${prefix}HTTP_PORT"
          launch "$name" .venv/bin/mediafleet-service "$name" worker
          wait_ready "$name" "http://127.0.0.1:${!var:-$port}/healthz"
          curl -fsS "http://127.0.0.1:${!var:-$port}/readyz" >/dev/null 2>&1 \
            || echo "$name is up but not ready: $(curl -sS "http://127.0.0.1:${!var:-$port}/readyz")" >&2
        done < <(.venv/bin/mediafleet-service --list)
        ;;
      *) echo "usage: $0 start core|ai" >&2; exit 2 ;;
    esac ;;
  stop)
    for f in "$RUN"/*.pid; do
      [ -e "$f" ] || continue
      name=$(basename "$f" .pid)
      [ "$name" = redis ] && continue  # last, after everything that uses it
      halt "$name"
    done
    [ -f "$RUN/redis.pid" ] && halt redis
    true ;;
  ps)
    for f in "$RUN"/*.pid; do
      [ -e "$f" ] || continue
      name=$(basename "$f" .pid)
      if running "$name"; then echo "$name  pid $(cat "$f")  up"; else echo "$name  down"; fi
    done ;;
  *) echo "usage: $0 start core|ai | stop | ps" >&2; exit 2 ;;
esac
