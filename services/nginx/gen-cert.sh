#!/bin/sh
# Self-signed certificate for NGINX_SERVER_NAME (replace with Let's Encrypt for production).
set -eu
dir=/etc/nginx/certs
name=${NGINX_SERVER_NAME:-localhost}
openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=${name}" \
  -addext "subjectAltName=DNS:${name},DNS:localhost,IP:127.0.0.1" \
  -keyout "$dir/privkey.pem" -out "$dir/fullchain.pem" 2>/dev/null
echo "self-signed certificate for ${name} written to $dir"
