#!/bin/sh
# Rendered by hostctl: the continuous health probe (hostctl.probe).
# Run by hostctl-probe.timer; state in /var/lib/hostctl/health.
probe_http() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsS -o /dev/null --max-time "$3" "http://$1:$2$4" 2>/dev/null
  elif command -v python3 >/dev/null 2>&1; then
    python3 -c "import sys,urllib.request as u; u.urlopen('http://'+sys.argv[1]+':'+sys.argv[2]+sys.argv[4], timeout=float(sys.argv[3]))" "$1" "$2" "$3" "$4" >/dev/null 2>&1
  elif command -v wget >/dev/null 2>&1; then
    wget -q -O /dev/null -T "$3" "http://$1:$2$4"
  else echo '@@nohttp'; return 1; fi
}
probe_tcp() {
  timeout "$3" bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}
ip_of() {
  /usr/bin/docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "$1" 2>/dev/null | cut -d' ' -f1
}
set -u
export LC_ALL=C TZ=UTC
ROOT=${HOSTCTL_PROBE_ROOT:-}
CONF=$ROOT/etc/hostctl/probe/services.conf
STATE=$ROOT/var/lib/hostctl/health
LOG=$ROOT/var/lib/hostctl/health.log
LOCK=$ROOT/var/lib/hostctl/lock
CAP=300
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
CONTAINERS=$(/usr/bin/docker inspect -f "{{.Name}}@T@{{.State.Running}}@T@{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}@T@{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}" $(grep -v '^#' "$CONF" | awk 'NF { print $2 }') \
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
