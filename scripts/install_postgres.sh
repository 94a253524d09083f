#!/usr/bin/env bash
# Installs PostgreSQL's server from Debian's packages for the database tests (tests/postgres.py starts its
# own throwaway server on loopback; the packaged service is not used). Needs root; idempotent.
set -uo pipefail
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && exit 0
. "$(dirname "$0")/apt_install.sh"
apt_install install_postgres "the PostgreSQL tests will be skipped" postgresql postgresql
