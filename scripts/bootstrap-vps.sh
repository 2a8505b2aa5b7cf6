#!/usr/bin/env bash
# One command from a fresh Debian 12 or Ubuntu 24.04 VPS to a running mediafleet with a real
# certificate (docs/operations.md#a-new-vps). As root, from a clone of this repository:
#   bash scripts/bootstrap-vps.sh media.example.org you@example.org
# DOMAIN must already resolve to this host (Let's Encrypt checks it over HTTP on port 80).
#
# It installs Docker and Compose, git, make, ufw and certbot from the distribution; makes a
# deploy user `mediafleet` (in the docker group) that owns a copy of this checkout in
# /srv/mediafleet/app; writes its .env with generated secrets (never printed: the first admin's
# password stays in .env, readable by root and mediafleet only); lets only 22, 80 and 443 in;
# installs a systemd unit that starts the fleet at boot; builds the images, pulls the weights,
# starts the fleet; obtains the certificate with certbot's webroot mode (nginx already serves
# /.well-known/acme-challenge from the `acme` volume) and a deploy hook that puts every renewal
# in nginx's `certs` volume and reloads it (the distribution's certbot timer renews); and ends
# with a health check through the public URL.
#
# Settings (environment): MEDIAFLEET_HOME (/srv/mediafleet), SKIP_CERT=1 (keep the self-signed
# certificate, e.g. without DNS yet), OFFLINE=1 / MODELS_SOURCE=package (as for make images /
# make models), BOOTSTRAP_ANY_OS=1 (try another Debian-like system).
# Safe to run again: each step checks what is there first.
set -euo pipefail

DOMAIN=${1:-}
EMAIL=${2:-}
HOME_DIR=${MEDIAFLEET_HOME:-/srv/mediafleet}
APP=$HOME_DIR/app
USER_NAME=mediafleet
PROJECT=app  # the compose project: the checkout's folder name
SRC=$(cd "$(dirname "$0")/.." && pwd)

say() { printf '== %s\n' "$*"; }
die() { printf 'bootstrap-vps: %s\n' "$*" >&2; exit 1; }
as_user() { runuser -u "$USER_NAME" -- env HOME="$HOME_DIR" "$@"; }

if [ -z "$DOMAIN" ] || [ -z "$EMAIL" ]; then
  die "usage: $0 DOMAIN EMAIL   (e.g. media.example.org you@example.org)"
fi
[[ $DOMAIN =~ ^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$ ]] \
  || die "$DOMAIN is not a domain name (media.example.org)"
[[ $EMAIL =~ ^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$ ]] || die "$EMAIL is not an e-mail address"
[ "$(id -u)" -eq 0 ] || die "run it as root (sudo bash $0 $DOMAIN $EMAIL)"

# --- the system --------------------------------------------------------------------------
# shellcheck disable=SC1091  # the running system's file
. /etc/os-release
case "${ID:-}:${VERSION_ID:-}" in
  debian:12) compose_pkg=docker-compose ;;       # Compose 1.29 (docker-compose)
  ubuntu:24.04) compose_pkg=docker-compose-v2 ;; # Compose v2 (docker compose)
  *)
    [ "${BOOTSTRAP_ANY_OS:-0}" = 1 ] || die "${PRETTY_NAME:-this system} is not Debian 12 or Ubuntu 24.04 (BOOTSTRAP_ANY_OS=1 tries anyway)"
    compose_pkg=docker-compose ;;
esac
say "packages: docker.io $compose_pkg git make ufw certbot curl openssl python3-venv"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends docker.io "$compose_pkg" git make ufw certbot curl openssl \
  ca-certificates python3 python3-venv >/dev/null
systemctl enable --now docker >/dev/null

# --- the deploy user and the checkout ----------------------------------------------------
if ! id "$USER_NAME" >/dev/null 2>&1; then
  say "user $USER_NAME (home $HOME_DIR)"
  useradd --system --create-home --home-dir "$HOME_DIR" --shell /bin/bash "$USER_NAME"
fi
getent group docker >/dev/null || groupadd --system docker
usermod -aG docker "$USER_NAME"
if [ ! -d "$APP/.git" ]; then
  say "checkout: $SRC -> $APP"
  git clone --quiet "$SRC" "$APP"
  chown -R "$USER_NAME:$USER_NAME" "$APP"
fi

# --- .env: generated secrets, this domain, served to the world ----------------------------
if [ ! -f "$APP/.env" ]; then
  as_user bash "$APP/scripts/new-env.sh" >/dev/null  # it prints the admin password: not here
  sed -i -e "s|^NGINX_SERVER_NAME=.*|NGINX_SERVER_NAME=$DOMAIN|" \
         -e "s|^BIND_ADDRESS=.*|BIND_ADDRESS=0.0.0.0        # bootstrap-vps: served to other hosts|" "$APP/.env"
  chown "$USER_NAME:$USER_NAME" "$APP/.env"
  chmod 600 "$APP/.env"
  say ".env written with generated secrets ($APP/.env, mode 600)"
fi

# --- firewall: SSH, HTTP, HTTPS ---------------------------------------------------------
# Docker publishes ports past ufw's rules; only nginx publishes to the world (80, 443), and
# Prometheus/Grafana bind 127.0.0.1 (MONITORING_BIND_ADDRESS).
say "firewall: 22, 80, 443 in; everything else refused"
ufw default deny incoming >/dev/null
ufw default allow outgoing >/dev/null
for port in 22 80 443; do ufw allow "$port/tcp" >/dev/null; done
ufw --force enable >/dev/null

# --- the fleet at boot -------------------------------------------------------------------
cat >/etc/systemd/system/mediafleet.service <<UNIT
[Unit]
Description=mediafleet (Docker Compose fleet in $APP)
Requires=docker.service
After=docker.service network-online.target
Wants=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
User=$USER_NAME
WorkingDirectory=$APP
Environment=HOME=$HOME_DIR
ExecStart=/usr/bin/make run-core-services run-ai-services
ExecStop=/usr/bin/make stop
TimeoutStartSec=900
TimeoutStopSec=360

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable mediafleet >/dev/null
say "systemd: mediafleet.service enabled (starts the fleet at boot)"

say "images and weights (the first build takes a while)"
as_user make -C "$APP" images OFFLINE="${OFFLINE:-}"
as_user make -C "$APP" models MODELS_SOURCE="${MODELS_SOURCE:-}"
systemctl start mediafleet
say "fleet started"

# --- the certificate ---------------------------------------------------------------------
volume_dir() { docker volume inspect -f '{{.Mountpoint}}' "${PROJECT}_$1"; }
if [ "${SKIP_CERT:-0}" = 1 ]; then
  say "certificate: skipped (SKIP_CERT=1): nginx serves its self-signed one"
else
  acme=$(volume_dir acme)
  certbot certonly --webroot -w "$acme" -d "$DOMAIN" -m "$EMAIL" --agree-tos --non-interactive --keep-until-expiring
  hook=/etc/letsencrypt/renewal-hooks/deploy/mediafleet.sh
  mkdir -p "$(dirname "$hook")"
  cat >"$hook" <<HOOK
#!/bin/sh
# certbot deploy hook (bootstrap-vps.sh): the renewed certificate into nginx's certs volume
set -eu
certs=\$(docker volume inspect -f '{{.Mountpoint}}' ${PROJECT}_certs)
install -m 644 /etc/letsencrypt/live/$DOMAIN/fullchain.pem "\$certs/fullchain.pem"
install -m 640 -g 33 /etc/letsencrypt/live/$DOMAIN/privkey.pem "\$certs/privkey.pem"  # 33: www-data
runuser -u $USER_NAME -- make -C $APP compose ARGS="exec -T nginx nginx -c /etc/mediafleet/nginx.conf -s reload"
HOOK
  chmod 755 "$hook"
  RENEWED_LINEAGE=/etc/letsencrypt/live/$DOMAIN "$hook"
  systemctl enable --now certbot.timer >/dev/null 2>&1 || true  # the package's renewal timer
  say "certificate: Let's Encrypt for $DOMAIN, renewed by certbot.timer, deployed by $hook"
fi

# --- health ------------------------------------------------------------------------------
say "waiting for https://$DOMAIN/api/readyz"
tls=()
[ "${SKIP_CERT:-0}" != 1 ] || tls=(--insecure)  # the self-signed certificate
curl -fsS --retry 60 --retry-delay 5 --retry-all-errors --resolve "$DOMAIN:443:127.0.0.1" \
  "${tls[@]}" "https://$DOMAIN/api/readyz" >/dev/null \
  || die "the fleet did not answer https://$DOMAIN/api/readyz: see runuser -u $USER_NAME -- make -C $APP ps"
say "mediafleet is up: https://$DOMAIN/  (sign in as admin; the first password is GATEWAY_ADMIN_PASSWORD in $APP/.env)"
