#!/usr/bin/env bash
# README's first command: set up, then run hostctl's main job on the worked example.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/venv.sh
.venv/bin/hostctl validate -i inventories/site.yml
.venv/bin/hostctl render -i inventories/site.yml -o out
