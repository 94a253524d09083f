#!/usr/bin/env bash
# Installs nginx from Debian's packages, the load balancer of the failover test (tests/test_failover.py starts its
# own on loopback; the packaged service is not used). Needs root; idempotent.
set -uo pipefail
[ -x /usr/sbin/nginx ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "install_nginx: not root or no apt-get; the failover test will be skipped" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends nginx >/dev/null 2>&1 \
  || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends nginx >/dev/null 2>&1; } \
  || echo "install_nginx: apt-get could not install nginx; the failover test will be skipped" >&2
command -v service >/dev/null && service nginx stop >/dev/null 2>&1
exit 0
