#!/usr/bin/env bash
# Builds TypeScript to dist/ and bpf/*.bpf.c to bpf/*.bpf.o, each only when its sources changed.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=dist/.build-stamp
if [ ! -f "$stamp" ] || [ -n "$(find src bench scripts package.json tsconfig.json tsconfig.build.json -newer "$stamp" -print -quit 2>/dev/null)" ]; then
  echo "build: tsc"
  rm -rf dist
  npx --no-install tsc -p tsconfig.build.json
  chmod +x dist/src/cli/main.js
  touch "$stamp"
fi
if [ -f bpf/Makefile ]; then
  make -s -C bpf
fi
