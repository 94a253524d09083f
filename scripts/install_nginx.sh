#!/usr/bin/env bash
# Installs nginx from Debian's packages, the load balancer of the failover test (tests/test_replicas.py starts
# its own on loopback; the packaged service is not used). Needs root; idempotent.
set -uo pipefail
[ -x /usr/sbin/nginx ] && exit 0
. "$(dirname "$0")/apt_install.sh"
apt_install install_nginx "the failover test will be skipped" nginx nginx
