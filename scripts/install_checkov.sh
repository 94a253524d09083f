#!/usr/bin/env bash
# Installs checkov, the security linter tests/test_kubernetes.py runs over the rendered Kubernetes manifests,
# into its own virtual environment (.venv-checkov: its pinned dependencies stay out of the service's).
# Idempotent; from the package registry only. Without it that one test is skipped with this reason.
set -uo pipefail
cd "$(dirname "$0")/.."
[ -x .venv-checkov/bin/checkov ] && exit 0
python3 -m venv .venv-checkov >/dev/null 2>&1 \
  && .venv-checkov/bin/pip install -q --disable-pip-version-check "checkov>=3.2,<4" >/dev/null 2>&1 \
  || { echo "install_checkov: could not install checkov; the Kubernetes security lint will be skipped" >&2; rm -rf .venv-checkov; }
exit 0
