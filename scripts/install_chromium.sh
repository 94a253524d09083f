#!/usr/bin/env bash
# Installs the browser of the console's end-to-end tests: Debian's chromium and chromium-driver
# (/usr/bin/chromium). Needs root; idempotent. Nothing downloads a browser at test time: without it the
# browser tests are skipped with this reason.
set -uo pipefail
command -v chromium >/dev/null && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "install_chromium: not root or no apt-get; the console's browser tests will be skipped" >&2
  exit 0
fi
pkgs=(chromium chromium-driver fonts-dejavu-core)
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends "${pkgs[@]}" >/dev/null 2>&1 \
  || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends "${pkgs[@]}" >/dev/null 2>&1; } \
  || echo "install_chromium: apt-get could not install ${pkgs[*]}; the console's browser tests will be skipped" >&2
exit 0
