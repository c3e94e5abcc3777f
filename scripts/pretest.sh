#!/usr/bin/env bash
# What `npm test` needs before tap runs: system packages for the real peers
# (as root), npm packages on a fresh clone, and the build (the CLI tests run
# the compiled bin/).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/setup-docker.sh
if [ ! -x node_modules/.bin/tap ] || [ ! -x node_modules/.bin/tsc ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
node_modules/.bin/tsc -p tsconfig.json
