#!/usr/bin/env bash
# Debian's Chromium, for the tests that render Sada's report pages in a real browser
# (tests/browser.py: `chromium --headless --dump-dom` and `--screenshot`). `make test` and
# `make integration` run it first; a machine that has Chromium installs nothing.
#
# Usage: deploy/local/chromium.sh        install when missing, print the binary's path
#
# Installed with apt-get as root (like promtool in deploy/check.sh). The .debs are kept in
# $CACHE/apt (SADA_CACHE_DIR, default .cache), so a second machine or a re-created container
# with the same cache downloads nothing: apt only fetches what that directory lacks.
# Exit 0 with the path on stdout, 2 when Chromium is missing and cannot be installed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${SADA_CACHE_DIR:-$ROOT/.cache}
ARCHIVES=$CACHE/apt
PACKAGES=(chromium)

say() { printf 'chromium.sh: %s\n' "$*" >&2; }
die() {
  say "$*"
  exit 2
}

found() { command -v chromium 2>/dev/null; }

if path=$(found); then
  echo "$path"
  exit 0
fi
if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
  die "chromium is missing: install Debian's package 'chromium' (needs root and apt)"
fi

mkdir -p "$ARCHIVES/partial"
install() {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o "Dir::Cache::Archives=$ARCHIVES" -o APT::Sandbox::User=root "${PACKAGES[@]}" 2>&1
}

say "installing Debian's ${PACKAGES[*]} (.debs cached in $ARCHIVES)"
# The package lists may be stale (a security update replaced the .deb): update once and retry.
if ! out=$(install); then
  say "install failed; refreshing the package lists and retrying"
  out=$(apt-get update -qq 2>&1) || {
    printf '%s\n' "$out" >&2
    die "apt-get update failed"
  }
  out=$(install) || {
    printf '%s\n' "$out" >&2
    die "apt-get install ${PACKAGES[*]} failed"
  }
fi
path=$(found) || die "chromium still missing after installing it"
say "installed: $("$path" --version 2>/dev/null || echo "$path")"
echo "$path"
