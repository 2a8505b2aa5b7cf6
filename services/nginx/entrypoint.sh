#!/bin/sh
set -eu
if [ ! -s /etc/nginx/certs/fullchain.pem ] || [ ! -s /etc/nginx/certs/privkey.pem ]; then
  /usr/local/bin/gen-cert.sh
fi
vars='${NGINX_SERVER_NAME} ${NGINX_CLIENT_MAX_BODY_SIZE} ${NGINX_PUBLIC_HTTPS_PORT} ${NGINX_AUTH_RATE} ${NGINX_UPLOAD_RATE} ${NGINX_GATEWAY_HOST}'
envsubst "$vars" </etc/mediafleet/nginx.conf.template >/etc/mediafleet/nginx.conf

# The upstream's address is resolved when nginx loads its configuration: wait until the
# gateway's name resolves (nginx refuses to start on a name it cannot resolve).
gateway_address() { getent hosts "$NGINX_GATEWAY_HOST" | awk '{print $1}' | sort | paste -sd, -; }
waited=0
until [ -n "$(gateway_address)" ]; do
  [ "$waited" -eq 0 ] && echo "nginx: waiting for the gateway's address ($NGINX_GATEWAY_HOST)" >&2
  waited=$((waited + 1))
  sleep 1
done
nginx -t -c /etc/mediafleet/nginx.conf -q

# A recreated gateway container may get a new address: reload nginx (graceful: requests in
# flight finish on the old workers) when the name resolves to another one.
watch_gateway() {
  known=$(gateway_address)
  while sleep "${NGINX_RESOLVE_EVERY_S}"; do
    now=$(gateway_address)
    if [ -n "$now" ] && [ "$now" != "$known" ]; then
      echo "nginx: the gateway's address changed ($known -> $now): reloading" >&2
      nginx -c /etc/mediafleet/nginx.conf -s reload && known=$now
    fi
  done
}
watch_gateway &
exec nginx -c /etc/mediafleet/nginx.conf -g 'daemon off;'
