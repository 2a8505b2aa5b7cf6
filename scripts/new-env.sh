#!/usr/bin/env bash
# make env: write .env from .env.example with generated secrets (never committed: .gitignore).
#   POSTGRES_PASSWORD, GATEWAY_SECRET_KEY, INTERNAL_TOKEN, GATEWAY_INTERNALS_TOKEN (what
#   Prometheus scrapes the gateway with): random, never printed.
#   REDIS_{GATEWAY,JOB_MANAGER,WORKER,EXPORTER}_PASSWORD: random, one Redis user per role.
#   MEDIA_URL_SECRET: random, the key of the media URLs worker hosts fetch (with MEDIA_URL_BASE).
#   GRAFANA_ADMIN_PASSWORD: random; read it from .env to sign in to Grafana (user admin).
#   GATEWAY_ADMIN_PASSWORD: random, printed once: the first admin signs in with it and must
#   choose their own at that first sign-in.
# Never overwrites an existing .env (FORCE=1 replaces it: the fleet's volumes keep data made
# with the old secrets, so only do that before the first start); it adds the secrets a newer
# version needs and the .env lacks (an upgrade: make env && make upgrade).
set -euo pipefail
cd "$(dirname "$0")/.."
rand() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }
# secrets added after the first release: generated into an existing .env that lacks them
ADDED=(REDIS_GATEWAY_PASSWORD REDIS_JOB_MANAGER_PASSWORD REDIS_WORKER_PASSWORD REDIS_EXPORTER_PASSWORD MEDIA_URL_SECRET)
if [ -e .env ] && [ "${FORCE:-0}" != 1 ]; then
  added=()
  for key in "${ADDED[@]}"; do
    if ! grep -q "^$key=." .env; then
      sed -i "/^$key=/d" .env
      echo "$key=$(rand 16)" >> .env
      added+=("$key")
    fi
  done
  if [ ${#added[@]} -gt 0 ]; then
    echo ".env exists: added ${added[*]} (generated); the rest kept as it is"
  else
    echo ".env exists: kept as it is (FORCE=1 make env writes a new one)" >&2
  fi
  exit 0
fi
admin=$(rand 12)
umask 077
sed -e "s|^POSTGRES_PASSWORD=.*|POSTGRES_PASSWORD=$(rand 24)|" \
    -e "s|^GATEWAY_SECRET_KEY=.*|GATEWAY_SECRET_KEY=$(rand 32)|" \
    -e "s|^INTERNAL_TOKEN=.*|INTERNAL_TOKEN=$(rand 32)|" \
    -e "s|^GATEWAY_INTERNALS_TOKEN=.*|GATEWAY_INTERNALS_TOKEN=$(rand 32)|" \
    -e "s|^REDIS_GATEWAY_PASSWORD=.*|REDIS_GATEWAY_PASSWORD=$(rand 16)|" \
    -e "s|^REDIS_JOB_MANAGER_PASSWORD=.*|REDIS_JOB_MANAGER_PASSWORD=$(rand 16)|" \
    -e "s|^REDIS_WORKER_PASSWORD=.*|REDIS_WORKER_PASSWORD=$(rand 16)|" \
    -e "s|^REDIS_EXPORTER_PASSWORD=.*|REDIS_EXPORTER_PASSWORD=$(rand 16)|" \
    -e "s|^MEDIA_URL_SECRET=.*|MEDIA_URL_SECRET=$(rand 32)|" \
    -e "s|^GRAFANA_ADMIN_PASSWORD=.*|GRAFANA_ADMIN_PASSWORD=$(rand 12)|" \
    -e "s|^GATEWAY_ADMIN_PASSWORD=.*|GATEWAY_ADMIN_PASSWORD=$admin|" \
    .env.example > .env
echo ".env written (mode 600) with generated secrets"
echo "first sign-in: user admin, password $admin (the web UI then asks for your own)"
