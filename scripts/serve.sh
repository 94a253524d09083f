#!/usr/bin/env bash
# Quick start: set up, then serve the shipped default model on http://127.0.0.1:8000
# (CXR_HOST / CXR_PORT / CXR_MODEL / CXR_DEVICE and the other CXR_* variables apply; extra args go to `cxr serve`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/cxr serve "$@"
