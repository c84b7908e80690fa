#!/usr/bin/env bash
# Install what the browser suite needs and a fresh machine lacks; idempotent, so CI and
# the Makefile can call it every time. Never `playwright install`: that downloads a
# browser, which this network refuses. We drive Debian's chromium instead.
#   bash tests/e2e/install.sh            (from anywhere; uses the repo's .venv)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
python="${E2E_PYTHON:-$root/.venv/bin/python}"

if [ ! -x /usr/bin/chromium ]; then
  echo "e2e: installing Debian's chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "e2e: node and npm are required (the provider is panva's oidc-provider)" >&2
  exit 1
fi
# npm ci when node_modules is missing or older than the lock file.
if [ ! -d "$here/node_modules/oidc-provider" ] \
  || [ "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ]; then
  echo "e2e: npm ci in tests/e2e"
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi

if [ ! -x "$python" ]; then
  echo "e2e: $python is missing; run 'make install' first" >&2
  exit 1
fi
if ! "$python" -c "import playwright" >/dev/null 2>&1; then
  echo "e2e: pip install -r tests/e2e/requirements.txt"
  "$python" -m pip install -q -r "$here/requirements.txt"
fi
