#!/usr/bin/env bash
# make env: write .env from .env.example with generated secrets (never committed: .gitignore).
#   POSTGRES_PASSWORD, GATEWAY_SECRET_KEY, INTERNAL_TOKEN, GATEWAY_INTERNALS_TOKEN (what
#   Prometheus scrapes the gateway with): random, never printed.
#   GRAFANA_ADMIN_PASSWORD: random; read it from .env to sign in to Grafana (user admin).
#   GATEWAY_ADMIN_PASSWORD: random, printed once: the first admin signs in with it and must
#   choose their own at that first sign-in.
# Refuses to overwrite an existing .env (FORCE=1 replaces it: the fleet's volumes keep data
# made with the old secrets, so only do that before the first start).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -e .env ] && [ "${FORCE:-0}" != 1 ]; then
  echo ".env exists: kept as it is (FORCE=1 make env writes a new one)" >&2
  exit 0
fi
rand() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }
admin=$(rand 12)
umask 077
sed -e "s|^POSTGRES_PASSWORD=.*|POSTGRES_PASSWORD=$(rand 24)|" \
    -e "s|^GATEWAY_SECRET_KEY=.*|GATEWAY_SECRET_KEY=$(rand 32)|" \
    -e "s|^INTERNAL_TOKEN=.*|INTERNAL_TOKEN=$(rand 32)|" \
    -e "s|^GATEWAY_INTERNALS_TOKEN=.*|GATEWAY_INTERNALS_TOKEN=$(rand 32)|" \
    -e "s|^GRAFANA_ADMIN_PASSWORD=.*|GRAFANA_ADMIN_PASSWORD=$(rand 12)|" \
    -e "s|^GATEWAY_ADMIN_PASSWORD=.*|GATEWAY_ADMIN_PASSWORD=$admin|" \
    .env.example > .env
echo ".env written (mode 600) with generated secrets"
echo "first sign-in: user admin, password $admin (the web UI then asks for your own)"
