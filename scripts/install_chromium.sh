#!/usr/bin/env bash
# Installs the browser of the console's end-to-end tests: Debian's chromium and chromium-driver
# (/usr/bin/chromium). Needs root; idempotent. Nothing downloads a browser at test time: without it the
# browser tests are skipped with this reason.
set -uo pipefail
command -v chromium >/dev/null && exit 0
. "$(dirname "$0")/apt_install.sh"
apt_install install_chromium "the console's browser tests will be skipped" - chromium chromium-driver fonts-dejavu-core
