#!/usr/bin/env bash
# Installs the Strapi example app (about 700 MB, 1,300 packages) on its own: it is outside
# the pnpm workspace so that the workspace's `pnpm install` never downloads Strapi.
#
# The @transcodekit packages come from tarballs packed here as npm would publish them
# (scripts/pack-packages.ts: `pnpm pack` of each package, through its prepack build), into
# .tarballs/ (git-ignored), so the app runs what an npm user gets. Needs the workspace
# installed first (`pnpm install` at the root) to build them.
#
# The lockfile pins every third-party package. A tarball's integrity changes with every change
# to the packages, so pnpm cannot install it with --frozen-lockfile: this script installs
# without it, then checks that nothing but our tarballs' integrity moved (else it fails, as
# --frozen-lockfile would) and puts the committed lockfile back.
#
# Idempotent: when package.json, the lockfile, Node and the tarballs have not changed since
# the last install, it only packs.
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

start=$(date +%s)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Pack every published package; keep them under stable names (no version) for package.json.
node ../../scripts/pack-packages.ts "$work/packed" > "$work/packed.txt"
rm -rf .tarballs
mkdir -p .tarballs
while read -r name tarball; do
  cp "$tarball" ".tarballs/transcodekit-${name#@transcodekit/}.tgz"
done < "$work/packed.txt"
echo "examples/strapi: packed $(wc -l < "$work/packed.txt") packages in $(( $(date +%s) - start )) s"

stamp=node_modules/.transcodekit-install
# The tarballs' contents (a new pack of the same files differs only in its timestamps).
contents="$(for t in .tarballs/*.tgz; do tar -xzOf "$t" | sha256sum; done)"
wanted="$({ cat package.json pnpm-lock.yaml; echo "$contents"; } | sha256sum | cut -d' ' -f1) $(node --version)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ] && [ -e node_modules/@strapi/strapi/package.json ] \
  && [ -e dist/build/index.html ]; then
  echo "examples/strapi: already installed"
  exit 0
fi

# Lines of the lockfile that may differ from the committed one: our tarballs' integrity.
ours='tarball: file:\.tarballs/'
cp pnpm-lock.yaml "$work/committed-lock.yaml"
restore() { cp "$work/committed-lock.yaml" pnpm-lock.yaml; }
trap 'restore; rm -rf "$work"' EXIT
# --ignore-workspace: its own lockfile and its own pnpm settings (package.json).
pnpm install --ignore-workspace --no-frozen-lockfile --reporter=append-only
if ! diff <(grep -v "$ours" "$work/committed-lock.yaml") <(grep -v "$ours" pnpm-lock.yaml); then
  echo "examples/strapi/install.sh: pnpm-lock.yaml is out of date (the lines above changed):" >&2
  echo "  run 'pnpm install --ignore-workspace' in examples/strapi after this script packed, and commit it" >&2
  rm -f "$stamp"
  exit 1
fi
mkdir -p public/uploads
# The admin panel, with the plugin's admin part (@transcodekit/strapi/strapi-admin) bundled in by
# Strapi's vite build, into dist/build, which Strapi serves under /admin (test/strapi-admin.test.ts).
built=$(date +%s)
pnpm exec strapi build
echo "examples/strapi: admin built in $(( $(date +%s) - built )) s"
echo "$wanted" > "$stamp"
echo "examples/strapi: installed in $(( $(date +%s) - start )) s"
