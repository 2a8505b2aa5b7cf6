#!/usr/bin/env bash
# The web UI (services/ui): Vue 3 + TypeScript + Vite, built on the host into services/ui/dist,
# which the nginx image copies (npm's registry is only needed here, not inside docker build).
#   scripts/ui.sh build     npm ci + type check + vite build
#   scripts/ui.sh test      npm ci + client/schema drift check + type check + Vitest
#   scripts/ui.sh api       regenerate src/api/openapi.json from the gateway and the typed client
#   scripts/ui.sh browser   Debian's Chromium for the Playwright end-to-end tests
set -euo pipefail
cd "$(dirname "$0")/.."
UI=services/ui
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

need_node() {  # Vite 7 needs Node.js 20.19+ (or 22.12+)
  if ! command -v npm >/dev/null 2>&1; then
    echo "installing nodejs and npm from Debian packages"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm
  fi
  node -e 'const [a,b]=process.versions.node.split(".").map(Number); if (a < 20 || (a === 20 && b < 19)) { console.error(`Node.js ${process.versions.node} is too old for Vite 7: install 20.19+ or 22.12+`); process.exit(1) }'
}

deps() {  # the locked packages, once per package-lock.json change
  need_node
  local stamp=$UI/node_modules/.mediafleet-lock
  if [ ! -f "$stamp" ] || ! cmp -s "$UI/package-lock.json" "$stamp"; then
    # the locked versions; not `npm ci`: npm 11 leaves other platforms' optional packages
    # (rollup's, esbuild's) out of package-lock.json, and `npm ci` refuses a lock without them
    (cd $UI && npm install --no-save --no-audit --no-fund --loglevel=error)
    cp "$UI/package-lock.json" "$stamp"
  fi
}

case "${1:-}" in
  build)
    deps
    (cd $UI && npm run -s build)
    echo "== web UI built: $UI/dist ($(du -sh $UI/dist | cut -f1))"
    ;;
  test)
    deps
    (cd $UI && npm run -s check-api && npm run -s typecheck && npx vitest run)
    ;;
  api)
    .venv/bin/python scripts/export-openapi.py
    deps
    (cd $UI && npm run -s gen-api)
    ;;
  browser)
    if ! command -v chromium >/dev/null 2>&1; then
      echo "installing chromium from Debian packages (the browser tests drive it; no browser download)"
      $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core
    fi
    chromium --version
    ;;
  *) echo "usage: $0 build|test|api|browser" >&2; exit 2 ;;
esac
