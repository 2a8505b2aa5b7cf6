#!/bin/sh
set -eu
if [ ! -s /etc/nginx/certs/fullchain.pem ] || [ ! -s /etc/nginx/certs/privkey.pem ]; then
  /usr/local/bin/gen-cert.sh
fi
vars='${NGINX_SERVER_NAME} ${NGINX_CLIENT_MAX_BODY_SIZE} ${NGINX_PUBLIC_HTTPS_PORT} ${NGINX_AUTH_RATE} ${NGINX_UPLOAD_RATE}'
envsubst "$vars" </etc/mediafleet/nginx.conf.template >/etc/mediafleet/nginx.conf
nginx -t -c /etc/mediafleet/nginx.conf -q
exec nginx -c /etc/mediafleet/nginx.conf -g 'daemon off;'
