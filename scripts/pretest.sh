#!/usr/bin/env bash
# What `npm test` needs before tap runs: system packages for the real peers
# (as root), npm packages on a fresh clone, and the build (the CLI tests run
# the compiled bin/).
set -euo pipefail
cd "$(dirname "$0")/.."
for s in setup.sh setup-docker.sh; do
  if ! bash "scripts/$s"; then
    echo "pretest: scripts/$s could not install what the integration tests need (see above); not running the tests" >&2
    exit 1
  fi
done
if [ ! -x node_modules/.bin/tap ] || [ ! -x node_modules/.bin/tsc ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
node_modules/.bin/tsc -p tsconfig.json
