#!/bin/sh
# openapi_lint.sh - `redocly lint` of docs/openapi.yaml with redocly.yaml (the recommended
# rules, each an error): run by ctest as openapi_lint. @redocly/cli is pinned in
# package.json; deploy/setup.sh installs it (`npm ci`).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
redocly="$root/node_modules/.bin/redocly"
if [ ! -x "$redocly" ]; then
    echo "openapi_lint: $redocly is missing: run deploy/setup.sh (npm ci installs @redocly/cli)" >&2
    exit 1
fi
cd "$root"
# no telemetry or update check: the test must not depend on the network
REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true NO_UPDATE_NOTIFIER=1 \
    exec "$redocly" lint --config redocly.yaml --format stylish docs/openapi.yaml
