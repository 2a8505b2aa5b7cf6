#!/usr/bin/env bash
# supervise.sh NAME STOPFILE COMMAND...
# Run COMMAND and start it again whenever it exits (backoff 1, 2, 4 ... 30 s; back to 1 s
# after a run of 60 s or more), until this script gets TERM/INT or STOPFILE exists.
# TERM/INT: stop COMMAND (TERM, then wait for it) and exit 0. Used by scripts/native.sh.
set -u
name=$1; stopfile=$2; shift 2
child=""
stop() {
  touch "$stopfile"
  if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null; wait "$child" 2>/dev/null; fi
  exit 0
}
trap stop TERM INT
delay=1
while :; do
  started=$(date +%s)
  "$@" &
  child=$!
  wait "$child"; rc=$?
  child=""
  [ -e "$stopfile" ] && exit 0
  up=$(( $(date +%s) - started ))
  [ "$up" -ge 60 ] && delay=1
  echo "$(date -u +%FT%TZ) supervise: $name exited with status $rc after ${up} s; restarting in ${delay} s" >&2
  sleep "$delay" & wait $!
  delay=$(( delay * 2 > 30 ? 30 : delay * 2 ))
done
