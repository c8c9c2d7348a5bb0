#!/usr/bin/env bash
# Installs the Strapi example app (about 700 MB, 1,300 packages) on its own: it is outside
# the pnpm workspace so that the workspace's `pnpm install` never downloads Strapi.
# Needs the workspace installed first (`pnpm install` at the root): the app links
# packages/core and packages/strapi, whose own dependencies live in the workspace.
# Idempotent: when package.json and the lockfile have not changed since the last install,
# it does nothing.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v pnpm >/dev/null 2>&1; then
  echo "examples/strapi/install.sh: pnpm 10 is needed (npm i -g pnpm@10)" >&2
  exit 1
fi
if [ ! -d ../../packages/core/node_modules ]; then
  echo "examples/strapi/install.sh: install the workspace first (pnpm install at the root)" >&2
  exit 1
fi

stamp=node_modules/.transcodekit-install
wanted="$(cat package.json pnpm-lock.yaml | sha256sum | cut -d' ' -f1) $(node --version)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ] && [ -e node_modules/@strapi/strapi/package.json ]; then
  echo "examples/strapi: already installed"
  exit 0
fi

start=$(date +%s)
# --ignore-workspace: its own lockfile and its own onlyBuiltDependencies (package.json).
pnpm install --ignore-workspace --frozen-lockfile --reporter=append-only
mkdir -p public/uploads
echo "$wanted" > "$stamp"
echo "examples/strapi: installed in $(( $(date +%s) - start )) s"
