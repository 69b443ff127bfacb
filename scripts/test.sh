#!/usr/bin/env bash
# README's test command: set up a fresh Debian 12 machine (as root) and run every check:
# ruff, mypy, import-linter and the whole pytest suite, sandbox hosts included. All always run, so
# one report shows everything; the exit status is non-zero if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/ci-setup.sh || exit 1
bash scripts/venv.sh || exit 1
status=0
echo "== ruff"
.venv/bin/ruff check hostctl tests bench || status=1
echo "== mypy"
.venv/bin/mypy || status=1
echo "== lint-imports"
.venv/bin/lint-imports || status=1
echo "== pytest"
.venv/bin/pytest "$@" || status=1
exit $status
