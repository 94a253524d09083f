#!/usr/bin/env bash
# Quick start: set up, then run the whole test suite (slow tests included; about 6 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/install_orthanc.sh  # the real PACS peer of tests/test_orthanc.py (Debian packages; skipped without root)
scripts/install_chromium.sh  # the browser of tests/test_console_browser.py (Debian packages; skipped without root)
scripts/install_postgres.sh  # the database tests' PostgreSQL (tests/postgres.py starts its own; skipped without it)
scripts/install_nginx.sh  # the load balancer of tests/test_replicas.py (Debian packages; skipped without root)
scripts/install_checkov.sh  # the Kubernetes manifests' security linter (its own venv; the lint is skipped without it)
# two workers, whole files each (module fixtures such as the Orthanc peers stay in one process): most
# slow tests wait on servers and subprocesses, so 2 cores run the suite in ~5 min instead of ~6.5
exec .venv/bin/python -m pytest -q -p no:cacheprovider --timeout 600 -n 2 --dist loadfile "$@"
