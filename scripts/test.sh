#!/usr/bin/env bash
# README's test command: set up a fresh Debian 12 machine (as root) and run every check:
# ruff, mypy and the whole pytest suite, sandbox hosts included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ci-setup.sh
bash scripts/venv.sh
echo "== ruff"
.venv/bin/ruff check hostctl tests bench
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
exec .venv/bin/pytest "$@"
