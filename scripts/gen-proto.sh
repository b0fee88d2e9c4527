#!/usr/bin/env bash
# Regenerates src/gen from proto/ with ts-proto (through buf; no protoc needed). Output is committed.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf src/gen
npx --no-install buf generate
