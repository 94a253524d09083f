#!/usr/bin/env bash
# Quick start: set up, then run the whole test suite (slow tests included; about 5 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python -m pytest -q -p no:cacheprovider --timeout 600 "$@"
