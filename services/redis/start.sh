#!/bin/sh
# mediafleet's Redis: one ACL user per role, no usable `default` user, and a TLS listener for
# worker hosts elsewhere (docs/worker-hosts.md). The image's entrypoint; also run as is by the
# tests on the host (Debian's redis-server and openssl).
#
#   start.sh [redis-server options...]   write the users file, make the certificate on the first
#                                        start, exec redis-server (extra options appended)
#   start.sh health                      exit 0 when Redis answers PING (the health check)
#
# Environment (every password required: letters and digits, 16 or more):
#   REDIS_GATEWAY_PASSWORD, REDIS_JOB_MANAGER_PASSWORD, REDIS_WORKER_PASSWORD,
#   REDIS_EXPORTER_PASSWORD             the users gateway, job_manager, worker, exporter
#   REDIS_ADMIN_PASSWORD (unset)        an `admin` user with every right, for operators (off when unset)
#   REDIS_PORT (6379)                   plain listener: the fleet's internal network only
#   REDIS_TLS_PORT (6380)               TLS listener: what other hosts connect to
#   REDIS_TLS_DIR ($REDIS_DATA_DIR/tls) redis.crt + redis.key (+ ca.crt): yours, or generated here
#   REDIS_TLS_SAN                       extra names in a generated certificate: "DNS:redis.example.org,IP:203.0.113.7"
#   REDIS_DATA_DIR (/data)              append-only file and snapshots
#   REDIS_RUN_DIR (/tmp/mediafleet-redis) the users file (hashes only), never in the data volume
set -eu

data=${REDIS_DATA_DIR:-/data}
tls=${REDIS_TLS_DIR:-$data/tls}
run=${REDIS_RUN_DIR:-/tmp/mediafleet-redis}
port=${REDIS_PORT:-6379}
tls_port=${REDIS_TLS_PORT:-6380}

if [ "${1:-}" = health ]; then
  # the `health` user may run PING and nothing else
  exec redis-cli -p "$port" --user health --pass health --no-auth-warning ping
fi

fail() { echo "redis: $*" >&2; exit 64; }

check_password() {
  eval "value=\${$1:-}"
  [ -n "$value" ] || fail "set $1 in .env (make env writes one)"
  case $value in
    *[!A-Za-z0-9]*) fail "$1 may hold letters and digits only (it goes into redis:// URLs)" ;;
  esac
  [ "${#value}" -ge 16 ] || fail "$1 is shorter than 16 characters"
}
password_hash() {  # the SHA-256 of a role's password, which the users file holds instead of it
  eval "value=\${$1:-}"
  printf '%s' "$value" | sha256sum | cut -d' ' -f1
}
for role in GATEWAY JOB_MANAGER WORKER EXPORTER; do check_password "REDIS_${role}_PASSWORD"; done
[ -z "${REDIS_ADMIN_PASSWORD:-}" ] || check_password REDIS_ADMIN_PASSWORD

umask 077
mkdir -p "$run" "$tls"

# Commands every application role may run: data types, streams, pub/sub, transactions and
# RQ's Lua scripts; never FLUSHALL/FLUSHDB, CONFIG, KEYS, DEBUG, SHUTDOWN, MONITOR, ACL,
# CLIENT KILL/LIST, SAVE, REPLICAOF, MIGRATE, RESTORE or SORT (all in @dangerous); INFO
# (RQ reads the server version) is allowed back.
app="-@all +@read +@write +@keyspace +@list +@hash +@string +@set +@sortedset +@stream +@blocking"
app="$app +@pubsub +@transaction +@scripting +@connection -@dangerous +info"
# Keys and pub/sub channels per role (docs/worker-hosts.md lists what a worker can still do).
# `default`: a random password made here and thrown away (no client can sign in as it), not
# `off`: Redis replays the append-only file's MULTI/EXEC blocks with default's rights, and with
# default off it drops them at every restart without a word (redis/redis#14541, valkey#3983).
rq="~rq:* &rq:pubsub:*"
cat >"$run/users.acl" <<ACL
user default on #$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n' | sha256sum | cut -d' ' -f1) +@all ~* &*
user health on nopass -@all +ping
user gateway on #$(password_hash REDIS_GATEWAY_PASSWORD) $app $rq ~mediafleet:* &mediafleet:principals:changed
user job_manager on #$(password_hash REDIS_JOB_MANAGER_PASSWORD) $app $rq ~mediafleet:jobs:new ~mediafleet:tasks:events ~mediafleet:job:* ~mediafleet:adverts ~mediafleet:worker:* ~mediafleet:job_manager:*
user worker on #$(password_hash REDIS_WORKER_PASSWORD) $app $rq ~mediafleet:tasks:events ~mediafleet:job:*:events ~mediafleet:adverts ~mediafleet:worker:*
user exporter on #$(password_hash REDIS_EXPORTER_PASSWORD) -@all +@connection +ping +info +config|get +client|list +client|info +slowlog|get +slowlog|len +latency|latest +cluster|info +select +dbsize +memory|stats
ACL
if [ -n "${REDIS_ADMIN_PASSWORD:-}" ]; then
  echo "user admin on #$(password_hash REDIS_ADMIN_PASSWORD) +@all ~* &*" >>"$run/users.acl"
fi

if [ ! -s "$tls/redis.crt" ] || [ ! -s "$tls/redis.key" ]; then
  # Self-signed, like nginx's: workers elsewhere trust this very certificate (its ca.crt copy)
  san="DNS:redis,DNS:localhost,IP:127.0.0.1${REDIS_TLS_SAN:+,$REDIS_TLS_SAN}"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=mediafleet-redis" \
    -addext "subjectAltName=$san" -keyout "$tls/redis.key" -out "$tls/redis.crt" 2>/dev/null
  cp "$tls/redis.crt" "$tls/ca.crt"
  echo "redis: TLS certificate for $san written to $tls (copy ca.crt to worker hosts)" >&2
fi
[ -s "$tls/ca.crt" ] || cp "$tls/redis.crt" "$tls/ca.crt"

exec redis-server --port "$port" --bind 0.0.0.0 --protected-mode no --dir "$data" \
  --appendonly yes --appendfsync everysec \
  --tls-port "$tls_port" --tls-cert-file "$tls/redis.crt" --tls-key-file "$tls/redis.key" \
  --tls-ca-cert-file "$tls/ca.crt" --tls-auth-clients no \
  --aclfile "$run/users.acl" "$@"
