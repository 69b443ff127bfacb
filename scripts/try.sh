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
# No image of Kong, Logstash or Elasticsearch can be had here: leave the gateway and the
# logging platform out, explicitly (services still log through gelf, and `hostctl logs` works).
hostctl deploy -i "$inventory" --yes --skip-platform gateway,logging
deployed_at=$(date +%s.%N)  # the exporter stamps each sample to the fraction of a second
hostctl status -i "$inventory"
# Every host runs hostctl's metrics exporter: what Prometheus would scrape from app-1.
address=$(hostctl sandbox list | awk '$1 == "app-1:" { print $2 }')
echo
echo "Metrics of app-1 (curl http://$address:9477/metrics), from a sample it took after the"
echo "deploy (the exporter samples every 5 s; an earlier one predates the health gate):"
metrics=
for _ in $(seq 30); do
  page=$(curl -fsS --noproxy '*' --max-time 5 "http://$address:9477/metrics" 2>/dev/null || true)
  if printf '%s\n' "$page" | awk -v t="$deployed_at" \
      '$1 == "hostctl_exporter_last_sample_timestamp_seconds" && $2 + 0 >= t { ok = 1 }
       END { exit !ok }'; then
    metrics=$(printf '%s\n' "$page" |
      grep -E '^hostctl_(service_up|service_healthy|project_cost_total)\{' || true)
    [ -n "$metrics" ] && break
  fi
  sleep 1
done
if [ -z "$metrics" ]; then
  echo "app-1's exporter did not answer with a sample taken after the deploy within 30s" >&2
  exit 1
fi
printf '%s\n' "$metrics"
echo
echo "Sandbox inventory: $inventory"
echo "Try: hostctl plan -i $inventory   |   hostctl sandbox down"
