#!/usr/bin/env bash
# Development-only material for the compose stack, generated, never committed:
#   certs/ca.crt, certs/ca.key      a throw-away certificate authority
#   certs/tls.crt, certs/tls.key    the ingress certificate for app.localhost and auth.localhost
#   secrets/client-secret           the bff client's secret (also given to Keycloak via .env)
#   secrets/secret-key              BFF_SECRET_KEY
#   .env                            BFF_DEV_CLIENT_SECRET for the realm import
# Usage: deploy/docker/gen-dev-secrets.sh [OUTPUT_DIR]   (default: this folder)
# Existing files are kept; delete them to start over. Trust certs/ca.crt in your browser
# (or accept the warning) to open https://app.localhost:8443/.
set -euo pipefail
out="${1:-$(cd "$(dirname "$0")" && pwd)}"
mkdir -p "$out/certs" "$out/secrets"
cd "$out"

if [ ! -f certs/tls.crt ]; then
  openssl req -x509 -newkey rsa:2048 -sha256 -days 825 -nodes -subj "/CN=bff development CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout certs/ca.key -out certs/ca.crt 2>/dev/null
  openssl req -newkey rsa:2048 -sha256 -nodes -subj "/CN=app.localhost" \
    -keyout certs/tls.key -out certs/tls.csr 2>/dev/null
  printf '%s\n' "subjectAltName=DNS:app.localhost,DNS:auth.localhost" \
    "extendedKeyUsage=serverAuth" "basicConstraints=CA:FALSE" > certs/tls.ext
  openssl x509 -req -sha256 -days 825 -in certs/tls.csr -CA certs/ca.crt -CAkey certs/ca.key \
    -CAcreateserial -extfile certs/tls.ext -out certs/tls.crt 2>/dev/null
  rm -f certs/tls.csr certs/tls.ext certs/ca.srl
  # Read by the unprivileged nginx (UID 101) through a bind mount: development only.
  chmod 0644 certs/tls.key certs/tls.crt certs/ca.crt
  chmod 0600 certs/ca.key
fi

secret() { python3 -c 'import secrets; print(secrets.token_urlsafe(32))'; }
if [ ! -f secrets/client-secret ]; then
  secret > secrets/client-secret
  secret > secrets/secret-key
  # Read by bff (UID 10001) through compose's file secrets (bind mounts): development only.
  chmod 0644 secrets/client-secret secrets/secret-key
fi
printf 'BFF_DEV_CLIENT_SECRET=%s\n' "$(cat secrets/client-secret)" > .env
chmod 0600 .env
echo "dev certificates and secrets in $out"
