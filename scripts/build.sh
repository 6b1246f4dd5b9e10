#!/usr/bin/env bash
# Builds both halves of the dual package from lib/:
#   dist/       ESM (package.json "type": "module"), with .d.ts: what `import` gets
#   dist/cjs/   CommonJS, with its own package.json {"type":"commonjs"} and .d.ts: what `require` gets
# Each half is one module graph: '.' and './terminus' of the same format share every module.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf dist
npx tsc -p tsconfig.build.json
npx tsc -p tsconfig.build.cjs.json
echo '{ "type": "commonjs" }' > dist/cjs/package.json
