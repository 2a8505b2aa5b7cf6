#!/bin/sh
# The monitoring profile's Prometheus: renders prometheus.yml.in (the scrape interval) and the
# gateway's bearer token into files only this container reads, then runs Prometheus (from
# Debian's package or the public prom/prometheus image: both put `prometheus` on PATH).
set -eu
if [ -z "${GATEWAY_INTERNALS_TOKEN:-}" ]; then
  echo "GATEWAY_INTERNALS_TOKEN is empty: the gateway's /metrics answers only that bearer token." >&2
  echo "Set it in .env (make env writes one), restart the gateway and this service." >&2
  exit 2
fi
conf=${MEDIAFLEET_MONITORING_DIR:-/etc/mediafleet}  # this folder, mounted read-only
run=${PROMETHEUS_RUN_DIR:-/prometheus/.mediafleet}
mkdir -p "$run"
umask 077
printf '%s' "$GATEWAY_INTERNALS_TOKEN" > "$run/gateway-token"
sed -e "s|@SCRAPE_INTERVAL@|${PROMETHEUS_SCRAPE_INTERVAL:-15s}|g" \
    -e "s|@GATEWAY_TOKEN_FILE@|$run/gateway-token|g" \
    -e "s|@CONFIG_DIR@|$conf|g" \
    "$conf/prometheus.yml.in" > "$run/prometheus.yml"
exec prometheus --config.file="$run/prometheus.yml" --storage.tsdb.path="${PROMETHEUS_DATA_DIR:-/prometheus}" \
  --storage.tsdb.retention.time="${PROMETHEUS_RETENTION_TIME:-15d}" \
  --storage.tsdb.retention.size="${PROMETHEUS_RETENTION_SIZE:-2GB}" \
  --web.listen-address=:9090
