#!/usr/bin/env bash
# Installs PostgreSQL's server from Debian's packages for the database tests (tests/postgres.py starts its
# own throwaway server on loopback; the packaged service is not used). Needs root; idempotent.
set -uo pipefail
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "install_postgres: not root or no apt-get; the PostgreSQL tests will be skipped" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends postgresql >/dev/null 2>&1 \
  || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends postgresql >/dev/null 2>&1; } \
  || echo "install_postgres: apt-get could not install postgresql; the PostgreSQL tests will be skipped" >&2
command -v service >/dev/null && service postgresql stop >/dev/null 2>&1
exit 0
