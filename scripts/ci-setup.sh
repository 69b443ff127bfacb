#!/usr/bin/env bash
# Install what hostctl's tests need on a fresh Debian 12 machine (run as root), then make
# sure a Docker engine answers. Safe to run again: installed packages are left as they are
# and a running dockerd is reused, never doubled.
set -euo pipefail

PACKAGES=(
  docker.io        # the engine the sandbox hosts run on, and dockerd inside them
  debootstrap      # builds the sandbox host image's root filesystem
  busybox-static   # the demo app image's whole userland
  systemd          # systemd-analyze, to verify rendered units offline
  openssh-client   # tests reach sandbox hosts with plain ssh
  openssh-server   # a real sshd on 127.0.0.1 for the runner's contract tests
  tzdata           # calendar expressions with time zones are checked against systemd
  python3-venv     # scripts/venv.sh on a machine whose python3 is Debian's
  prometheus       # a real Prometheus for the metrics tests
  curl
)
DOCKERD_LOG=/var/log/hostctl-dockerd.log
DOCKERD_WAIT_SECONDS=60

log() { printf '[ci-setup] %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
  echo "ci-setup.sh must run as root (it installs packages and starts dockerd)" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
log "apt-get update"
apt-get update -qq
log "installing ${PACKAGES[*]}"
# No recommends: they would pull in a desktop's worth of extras for prometheus and systemd.
apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null

engine_answers() { docker info >/dev/null 2>&1; }

dockerd_running() {
  local comm
  for comm in /proc/[0-9]*/comm; do
    [ "$(cat "$comm" 2>/dev/null)" = dockerd ] && return 0
  done
  return 1
}

if engine_answers; then
  log "Docker engine already running"
  exit 0
fi
# There is no systemd to start it; a dockerd that is still starting must not get a twin.
if ! dockerd_running; then
  log "starting dockerd (log: $DOCKERD_LOG)"
  setsid dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
fi
for _ in $(seq "$DOCKERD_WAIT_SECONDS"); do
  if engine_answers; then
    log "Docker engine ready"
    exit 0
  fi
  sleep 1
done
echo "dockerd did not answer within ${DOCKERD_WAIT_SECONDS}s; last lines of $DOCKERD_LOG:" >&2
tail -n 20 "$DOCKERD_LOG" >&2 || true
exit 1
