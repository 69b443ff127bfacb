"""The continuous health probe: a POSIX sh script, its config and a systemd timer per host.

Pure builders. The deploy's health gate (hostctl.deploy.health_gate.health_script) checks a
service once, right after it starts; this probe keeps checking it afterwards. Every few
seconds `hostctl-probe.timer` runs `hostctl-probe@tick.service` (oneshot), which runs
`probe.sh` once over the services in its config, each at most once per its interval:

- a unit that is not active (stopped on purpose, or being restarted by a deploy) is never
  touched; a unit that started since its last check is checked at once;
- inside the start period (counted from systemd's ActiveEnterTimestamp) a unit is checked
  too, as Docker does: a success records it healthy, a failure records `starting` and does
  not count toward the retries;
- a command check reads Docker's verdict: healthy, unhealthy, or while Docker has none yet
  (starting), `starting`, counted neither way;
- a failed check counts; `retries` consecutive failures restart the unit (`systemctl
  restart`), unless a back-off is running: the first restart is done at once, then each
  further restart without a healthy check between waits twice as long as the previous
  one, starting from the service's interval and capped at BACKOFF_CAP seconds;
- while a deploy holds the host's lock, restarts are held back (the deploy decides);
- each restart appends a JSON line to /var/lib/hostctl/health.log and goes to the journal.

State per unit, key=value lines under /var/lib/hostctl/health/<unit>.state: health
(healthy|unhealthy|starting|inactive), failures (consecutive), last_failure (epoch
seconds), last_reason, restarts (by the probe, ever), last_restart, backoff, not_before,
last_check. `hostctl status` reads them. Needs nothing beyond what hosts already have: sh,
systemctl, docker, and curl or python3 or wget (http), bash (tcp).
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass

from hostctl import layout as L
from hostctl.render.docker_cmd import health_cmd_word
from hostctl.render.files import MODE_PUBLIC, RenderedFile
from hostctl.spec import model as m
from hostctl.spec.placement import instances_on, placed_on

q = shlex.quote
SCRIPT_PATH, CONFIG_PATH, SERVICE_PATH, TIMER_PATH = L.PROBE_FILES
TICK_UNIT = "hostctl-probe@tick.service"
TIMER_UNIT = "hostctl-probe.timer"
EVERY = 5  # seconds between probe runs
BACKOFF_CAP = 300  # seconds: the longest wait between two restarts of one unit
# One line per container for the probe's single `docker inspect` (@T@ becomes a tab).
INSPECT_FORMAT = ("{{.Name}}@T@{{.State.Running}}@T@"
                  "{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}@T@"
                  "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}")
MODE_SCRIPT = 0o755



@dataclass(frozen=True)
class HealthProbe:
    """How to tell that one unit's container is healthy, checked on the host."""

    unit: str
    container: str
    kind: str  # "http" | "tcp" | "command" | "running"
    port: int = 0
    path: str = "/"
    interval: float = 10.0
    timeout: float = 5.0
    retries: int = 3
    start_period: float = 0.0
    # A command check: the shell line Docker runs with `/bin/sh -c` (--health-cmd), which the
    # deploy's health gate also runs itself (`docker exec`) rather than wait for Docker's.
    command: str = ""

    @property
    def budget(self) -> float:
        """Seconds after which the verdict is "unhealthy" whatever happens."""
        return self.start_period + (self.interval + self.timeout) * (self.retries + 1) + 5


def probe_functions(docker: str) -> list[str]:
    """Shell functions shared by the deploy's health gate and the host's probe
    (hostctl.render.probe):
    `probe_http IP PORT TIMEOUT PATH` (curl, else python3, else wget), `probe_tcp IP PORT
    TIMEOUT` (bash's /dev/tcp) and `ip_of CONTAINER` (its first network address)."""
    d = q(docker)
    return [
        "probe_http() {",
        "  if command -v curl >/dev/null 2>&1; then",
        '    curl -fsS -o /dev/null --max-time "$3" "http://$1:$2$4" 2>/dev/null',
        "  elif command -v python3 >/dev/null 2>&1; then",
        '    python3 -c "import sys,urllib.request as u; '
        "u.urlopen('http://'+sys.argv[1]+':'+sys.argv[2]+sys.argv[4], timeout=float(sys.argv[3]))"
        '" "$1" "$2" "$3" "$4" >/dev/null 2>&1',
        "  elif command -v wget >/dev/null 2>&1; then",
        '    wget -q -O /dev/null -T "$3" "http://$1:$2$4"',
        "  else echo '@@nohttp'; return 1; fi",
        "}",
        "probe_tcp() {",
        '  timeout "$3" bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null',
        "}",
        "ip_of() {",
        f"  {d} inspect -f '{{{{range .NetworkSettings.Networks}}}}{{{{.IPAddress}}}} "
        "{{end}}' \"$1\" 2>/dev/null | cut -d' ' -f1",
        "}",
    ]


def probe_for(w: m.Workload, container: str, unit: str) -> HealthProbe:
    """The health check of one service instance: its own http, tcp or command check, or
    without one, that its container is running."""
    h = w.health
    if h is None:
        return HealthProbe(unit, container, "running", interval=1, timeout=1, retries=3)
    command = ""
    if h.command is not None:
        kind, port, path = "command", 0, "/"
        command = health_cmd_word(h.command)
    else:
        check = h.http or h.tcp
        assert check is not None
        kind = "http" if h.http else "tcp"
        port = w.ports[check.port].container
        path = h.http.path if h.http else "/"
    return HealthProbe(unit, container, kind, port, path, h.interval, h.timeout, h.retries,
                       h.start_period, command)


def host_probes(site: m.Site, host: m.Host) -> list[HealthProbe]:
    """The service instances on `host` that have a health check, in unit order."""
    out = []
    for w in site.workloads:
        if w.is_job or w.health is None or not placed_on(w, host):
            continue
        for inst in instances_on(w, host):
            out.append(probe_for(w, inst.name, inst.unit))
    return sorted(out, key=lambda p: p.unit)


def _secs(value: float) -> int:
    return max(1, math.ceil(value))


def config_text(probes: list[HealthProbe]) -> str:
    """One line per unit: unit container kind port interval timeout retries start path.

    Docker itself applies a command check's retries (it says "unhealthy" only past them),
    so for those one "unhealthy" verdict is enough.
    """
    lines = ["# Rendered by hostctl: the services hostctl-probe checks. "
             "unit container kind port interval timeout retries start_period path"]
    for p in probes:
        retries = 1 if p.kind == "command" else max(1, p.retries)
        lines.append(" ".join([
            p.unit, p.container, p.kind, str(p.port), str(_secs(p.interval)),
            f"{p.timeout:g}", str(retries), str(math.ceil(p.start_period)), p.path]))
    return "\n".join(lines) + "\n"


_MAIN = r"""
set -u
export LC_ALL=C TZ=UTC
ROOT=${HOSTCTL_PROBE_ROOT:-}
CONF=$ROOT@CONF@
STATE=$ROOT@STATE@
LOG=$ROOT@LOG@
LOCK=$ROOT@LOCK@
CAP=@CAP@
mkdir -p "$STATE" || exit 1
[ -f "$CONF" ] || exit 0

load() {
  health=unknown failures=0 last_failure=0 last_reason= restarts=0 last_restart=0
  backoff=0 not_before=0 last_check=0
  [ -f "$1" ] || return 0
  while IFS='=' read -r k v; do
    case $k in
      health) health=$v ;; failures) failures=$v ;; last_failure) last_failure=$v ;;
      last_reason) last_reason=$v ;; restarts) restarts=$v ;; last_restart) last_restart=$v ;;
      backoff) backoff=$v ;; not_before) not_before=$v ;; last_check) last_check=$v ;;
    esac
  done < "$1"
}

save() {
  {
    echo "health=$health"; echo "failures=$failures"; echo "last_failure=$last_failure"
    echo "last_reason=$last_reason"; echo "restarts=$restarts"
    echo "last_restart=$last_restart"; echo "backoff=$backoff"
    echo "not_before=$not_before"; echo "last_check=$last_check"
  } > "$1.new" && mv -f "$1.new" "$1"
}

# One `systemctl show` and one `docker inspect` for every unit and container per run, read
# from these tables below: a docker CLI call per check and service costs a host with a few
# dozen services more CPU than the services themselves.
TAB=$(printf '\t')
lookup() {  # TABLE KEY: the rest of KEY's line in TABLE ("KEY<tab>rest")
  printf '%s\n' "$1" | while IFS= read -r line; do
    case $line in "$2$TAB"*) printf '%s\n' "${line#*"$TAB"}"; break ;; esac
  done
}

check() {  # unit container kind port timeout path: 0 when healthy, 2 when Docker's own
  # check has no verdict yet (starting), else 1 and prints why not
  seen=$(lookup "$CONTAINERS" "$2")
  running=${seen%%"$TAB"*}; rest=${seen#*"$TAB"}
  h=${rest%%"$TAB"*}; ip=${rest#*"$TAB"}; ip=${ip%% *}
  if [ "$running" != true ]; then echo "container $2 is not running"; return 1; fi
  case $3 in
    command)
      case $h in
        unhealthy) echo "docker health check says unhealthy"; return 1 ;;
        starting) return 2 ;;
      esac
      return 0 ;;
    running) return 0 ;;
  esac
  if [ -z "$ip" ]; then echo "container $2 has no address"; return 1; fi
  case $3 in
    http) probe_http "$ip" "$4" "$5" "$6" >/dev/null && return 0
          echo "http check of port $4 path $6 failed"; return 1 ;;
    tcp) probe_tcp "$ip" "$4" "$5" && return 0
         echo "tcp check of port $4 failed"; return 1 ;;
  esac
  echo "unknown check kind $3"; return 1
}

units=$(grep -v '^#' "$CONF" | awk 'NF { print $1 }')
[ -n "$units" ] || exit 0
# unit<tab>ActiveState<tab>ActiveEnterTimestamp, one line a unit
UNITS=$(systemctl show -p Id -p ActiveState -p ActiveEnterTimestamp -- $units 2>/dev/null |
  awk -F= -v OFS="$TAB" '
    /^Id=/ { id = $2 } /^ActiveState=/ { a = $2 }
    /^ActiveEnterTimestamp=/ { e = substr($0, index($0, "=") + 1) }
    /^$/ { if (id != "") print id, a, e; id = a = e = "" }
    END { if (id != "") print id, a, e }')
# container<tab>running<tab>health (or none)<tab>addresses; a missing one has no line
CONTAINERS=$(@DOCKER@ inspect -f "@INSPECT@" $(grep -v '^#' "$CONF" | awk 'NF { print $2 }') \
  2>/dev/null | sed "s|^/||; s|@T@|$TAB|g")

grep -v '^#' "$CONF" |
while read -r unit container kind port interval timeout retries start path; do
  [ -n "$unit" ] || continue
  f=$STATE/$unit.state
  load "$f"
  now=$(date +%s)
  seen=$(lookup "$UNITS" "$unit")
  active=${seen%%"$TAB"*}; entered=${seen#*"$TAB"}
  if [ "$active" != active ]; then
    # Stopped on purpose, failed (systemd restarts it), or being restarted: not ours.
    if [ "$health" != inactive ]; then health=inactive; failures=0; save "$f"; fi
    continue
  fi
  # A run that started after the last check is checked at once (its start unknown: as if
  # it had just started, so its start period never ends and failures never count).
  if since=$(date -d "$entered" +%s 2>/dev/null); then
    [ "$last_check" -lt "$since" ] && last_check=0
  else
    since=$now
  fi
  [ "$now" -ge $((last_check + interval)) ] || continue
  last_check=$now
  why=$(check "$unit" "$container" "$kind" "$port" "$timeout" "$path"); rc=$?
  if [ "$rc" = 0 ]; then
    # Healthy, also inside the start period (Docker counts a success there too).
    health=healthy; failures=0; backoff=0; not_before=0
    save "$f"; continue
  fi
  if [ "$rc" = 2 ] || [ $((now - since)) -lt "$start" ]; then
    # No verdict yet (Docker's own check is starting), or a failure inside the start
    # period: neither counts toward the retries (Docker's semantics).
    health=starting; failures=0
    save "$f"; continue
  fi
  why=$(printf '%s' "$why" | tr -d '"\\' | tr '\n' ' ')
  health=unhealthy; failures=$((failures + 1)); last_failure=$now; last_reason=$why
  if [ "$failures" -ge "$retries" ]; then
    if [ -d "$LOCK" ]; then
      last_reason="$why (restart held back: a deploy holds the host's lock)"
    elif [ "$now" -lt "$not_before" ]; then
      until=$(date -d "@$not_before" '+%Y-%m-%d %H:%M:%S' 2>/dev/null || echo "$not_before")
      last_reason="$why (restart held back until $until, back-off ${backoff}s)"
    else
      if [ "$backoff" -gt 0 ]; then backoff=$((backoff * 2)); else backoff=$interval; fi
      [ "$backoff" -gt "$CAP" ] && backoff=$CAP
      restarts=$((restarts + 1)); last_restart=$now; not_before=$((now + backoff))
      n=$failures; failures=0; health=restarting; last_check=0
      save "$f"
      if systemctl restart --no-block -- "$unit"; then result=restarted; else result=failed; fi
      at=$(date -u -d "@$now" +%Y-%m-%dT%H:%M:%SZ 2>/dev/null || echo "$now")
      printf '{"time":"%s","unit":"%s","container":"%s","action":"restart",' \
        "$at" "$unit" "$container" >> "$LOG"
      printf '"result":"%s","reason":"%s","failures":%s,"restarts":%s,"backoff":%s}\n' \
        "$result" "$why" "$n" "$restarts" "$backoff" >> "$LOG"
      logger -t hostctl-probe "restart of $unit ($result) after $n failed checks: $why;" \
        "restart $restarts by the probe, the next not within ${backoff}s" 2>/dev/null
      continue
    fi
  fi
  save "$f"
done
exit 0
"""


def script_text(docker: str) -> str:
    body = (_MAIN.replace("@CONF@", CONFIG_PATH).replace("@STATE@", L.HEALTH_DIR)
            .replace("@LOG@", L.HEALTH_LOG).replace("@LOCK@", L.LOCK_DIR)
            .replace("@CAP@", str(BACKOFF_CAP)).replace("@DOCKER@", q(docker))
            .replace("@INSPECT@", INSPECT_FORMAT))
    # The module's name before hostctl/render/ existed: kept so probe.sh stays byte for byte.
    head = ["#!/bin/sh", "# Rendered by hostctl: the continuous health probe (hostctl.probe).",
            "# Run by hostctl-probe.timer; state in " + L.HEALTH_DIR + "."]
    return "\n".join([*head, *probe_functions(docker)]) + body


def service_text(site: str) -> str:
    return f"""# Rendered by hostctl for site {site}: one run of the health probe.
[Unit]
Description=hostctl health probe (run %i)
After=docker.service

[Service]
Type=oneshot
ExecStart=/bin/sh {SCRIPT_PATH}
TimeoutStartSec=120
"""


def timer_text(site: str) -> str:
    return f"""# Rendered by hostctl for site {site}: runs the health probe every {EVERY}s.
[Unit]
Description=hostctl health probe, every {EVERY}s

[Timer]
OnActiveSec=1s
OnUnitInactiveSec={EVERY}s
AccuracySec=1s
Unit={TICK_UNIT}

[Install]
WantedBy=timers.target
"""


def probe_files(site: m.Site, host: m.Host) -> list[RenderedFile]:
    """The probe's files on `host`; none where no service has a health check."""
    probes = host_probes(site, host)
    if not probes:
        return []
    name = site.inventory.site
    w = L.PROBE_WORKLOAD
    return [
        RenderedFile(SCRIPT_PATH, script_text(host.docker).encode(), MODE_SCRIPT, workload=w),
        RenderedFile(CONFIG_PATH, config_text(probes).encode(), MODE_PUBLIC, workload=w),
        RenderedFile(SERVICE_PATH, service_text(name).encode(), MODE_PUBLIC, workload=w),
        RenderedFile(TIMER_PATH, timer_text(name).encode(), MODE_PUBLIC, workload=w),
    ]
