#!/usr/bin/env bash
# The typed client: generates TypeScript types from docs/openapi.yaml with openapi-typescript
# (pinned in package-lock.json, with the TypeScript compiler) and type-checks client.ts, which
# calls the API through them with openapi-fetch. Proves the document is usable by the
# ecosystem's generator, and fails when a change of the document breaks a caller.
set -euo pipefail

cd "$(dirname "$0")"

# Reinstall only when the lock file changed since the last install.
if ! cmp -s package-lock.json node_modules/.package-lock.json 2>/dev/null; then
    echo "client: installing openapi-typescript and typescript (npm ci)" >&2
    npm ci --no-audit --no-fund --loglevel=error
    cp package-lock.json node_modules/.package-lock.json
fi
mkdir -p generated
node_modules/.bin/openapi-typescript ../../docs/openapi.yaml --output generated/api.d.ts
node_modules/.bin/tsc --noEmit -p .
echo "client: docs/openapi.yaml generates a client that type-checks" >&2
