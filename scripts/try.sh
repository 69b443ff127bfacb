#!/usr/bin/env bash
# README's first command: set up this machine (as root, Debian 12), then run hostctl's main
# job: deploy the worked example (inventories/site.yml) into throwaway sandbox hosts and
# show their status. `hostctl sandbox down` removes the hosts afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ci-setup.sh          # Docker engine (started if none runs), debootstrap, busybox
bash scripts/venv.sh              # hostctl in .venv
export PATH="$PWD/.venv/bin:$PATH"
hostctl validate -i inventories/site.yml
inventory=$(hostctl sandbox up -i inventories/site.yml)
# No Kong image can be had here: leave the gateway out, explicitly.
hostctl deploy -i "$inventory" --yes --skip-platform gateway
hostctl status -i "$inventory"
echo
echo "Sandbox inventory: $inventory"
echo "Try: hostctl plan -i $inventory   |   hostctl sandbox down"
