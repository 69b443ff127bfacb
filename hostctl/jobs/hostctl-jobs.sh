#!/bin/sh
# hostctl-jobs: the host side of hostctl's job runs: the run queue, GPU leases, outcomes.
# Installed by hostctl (its sha256 is compared on every jobs command and the file replaced
# when it differs): do not edit it here.
#
# A run is a directory /var/lib/hostctl/runs/RUN_ID/ holding one small file per field (job,
# state, gpus, exit, ...): readers need no parser, and a field is replaced atomically (write
# aside, rename). Every change of state happens under one host-wide flock, so two operators,
# a timer and a finishing run never hand out the same GPU twice.
#
# Commands (called by hostctl's scripts and by the job units, not by hand):
#   submit ID...            queue runs that hostctl prepared in runs/.new-ID/
#   dispatch                reclaim what dead runs held, start the queued runs that fit
#   tick                    dispatch, and forget all but the last keep_runs ended runs of each
#                           job (the queue's timer)
#   admit JOB ID            ExecCondition of a run unit: exit 0 = start now, 1 = not now
#   finished JOB ID         ExecStopPost of a run unit: outcome, retry with back-off, next run
#   cancel ID               cancel a queued run, or stop a running one
#   lease-service UNIT N [MODELS]  ExecStartPre of a service that needs N GPUs (of one of
#                           MODELS, comma-separated, when it names some)
#   release-service UNIT    ExecStopPost of that service
#   install-queue           (re)write and enable the queue's timer, read the host's GPUs
#   quota-settle P...       for each project P: its allotment here := what its runs use now
#                           (admitted); prints "@@quota P CPU_MILLI MEM_BYTES GPUS" (that
#                           use), "@@held P ID PRIORITY SUBMITTED_MS CPU_MILLI MEM_BYTES GPUS"
#                           for each run waiting for its quota (queue order), "@@gpu_ms P MS"
#                           (its runs' GPU time this calendar month, UTC), then
#                           "@@svc_gpu_ms UNIT MS" for each service's GPU leases that month.
#                           Starts nothing.
#   quota-grant P CPU MEM GPUS  add to P's allotment (`-`: no limit in that dimension),
#                           print "@@allot P CPU MEM GPUS", then dispatch
#   quota-drop P            P is no longer governed here (its held runs are released); dispatch
#
# Queue rules (dispatch, under the lock):
# - A run's fields: priority high|normal|low (absent: normal); hold=quota while it waits for
#   its project's quota; over_budget (the reason an owner gave to pass a spent budget);
#   waiting "POS REASON" while it is queued (see PICK below).
# - Allotments: $S/quota/PROJECT, "CPU_MILLI MEM_BYTES GPUS", each an integer or `-` (no
#   limit): this host's share of the project's fleet quota. A project with one is governed
#   here; a run a timer (or systemctl start) queues for a governed project is held. A run asks
#   its cpus (milli; 0 counts 1000, not capped by the host), memory and need (GPUs);
#   admitted(P) = the asks of P's queued, starting and running runs without hold.
# - Promotion, before the start decisions: P's held runs in queue order, strictly: while
#   admitted(P) + ask fits the allotment in every limited dimension, the hold goes; the first
#   that does not fit ends P's promotions. Held runs of a project with no allotment are
#   released. A held run never starts and never stops the line for others. A cancelled or
#   ended run frees its share at once: the dispatch after it promotes the next.
# - Queue order: effective level descending (priority high 2, normal 1, low 0, plus one
#   level per AGE_STEP_MS = 30 minutes since it was submitted, at most 2), then seq.
# - GPU time for budgets: a running run that used GPUs appends "PROJECT TAB NEED TAB STARTED
#   TAB ENDED TAB DEVICES" to $G/run-usage when it ends (each attempt); a service's lease is
#   $G/since/UNIT "N START_MS DEVICES" while held and "UNIT TAB N TAB START TAB END TAB
#   DEVICES" in $G/svc-usage after (DEVICES comma-separated: the time is priced by their
#   models; lines written before they were recorded have none). Lines that ended over 400
#   days ago are pruned by `tick`.
set -u
umask 077
export LC_ALL=C
S=${HOSTCTL_STATE:-/var/lib/hostctl}  # overridden only by hostctl's own tests
R=$S/runs
A=$R/.active      # one empty file per run that has not finished: the queue
G=$S/gpu          # devices, mode, models, lease/DEV (holder), want/UNIT (services waiting),
                  # foreign (DEV TAB PID TAB NAME TAB MEMORY: compute processes on devices
                  # hostctl has not leased, as nvidia-smi saw them at the last pass)
CONF=$G/host.conf # written by hostctl (deploy, or any run or jobs command): mode, declared,
                  # models (DEV:MODEL ..., when the inventory names them), docker, keep_runs
TAB=$(printf '\t')
H=$R/.history     # the fields of every ended run, ID/FIELD:VALUE (what `grep -H ''` prints)
SELF=$S/bin/hostctl-jobs
# The queue's own units. Not hostctl-*: deploy removes unit files of that shape that no spec
# renders, and status reports them as drift. The tests of this file (HOSTCTL_STATE) install
# none unless they give a directory for them.
UNITS=${HOSTCTL_UNIT_DIR:-/etc/systemd/system}
[ -n "${HOSTCTL_STATE:-}" ] && [ -z "${HOSTCTL_UNIT_DIR:-}" ] && UNITS=
QUEUE=hostctl.jobs
QUEUE_PERIOD=20s   # how soon a dead run's or service's GPUs are reclaimed at worst
START_GRACE_MS=60000  # a run handed to systemd that has not started by then is re-queued
BACKOFF_BASE=5        # seconds before retry 1; doubled for each further retry
BACKOFF_MAX=300
KEEP_RUNS=500         # ended runs kept per job when host.conf says nothing
METRICS_MAX_POINTS=50000
METRICS_MAX_BYTES=10485760

log() { echo "hostctl-jobs: $*" >&2; }
now_ms() { date +%s%3N; }
get() { cat "$R/$1/$2" 2>/dev/null; }
put() { printf '%s\n' "$3" > "$R/$1/.$2.tmp" && mv -f "$R/$1/.$2.tmp" "$R/$1/$2"; }

locked() {
  mkdir -p "$A" "$G/lease" "$G/want"
  exec 9>>"$S/jobs.lock"
  # Bounded: a stuck holder must not hang a unit's start or stop for ever.
  flock -w 120 9 || { log "the queue lock stayed busy for 120 s"; exit 75; }
  gpus_init
  [ -e "$H" ] || history_init
}

conf() { sed -n "s/^$1=//p" "$CONF" 2>/dev/null | head -n 1; }

# devices and mode come from host.conf: the host's own view of its GPUs when the NVIDIA
# tools are there, the inventory's otherwise. Read again only when hostctl rewrote the conf
# (nvidia-smi is slow), so a host deployed to but never reached by `hostctl run` has them.
gpus_init() {
  [ -f "$CONF" ] || return 0
  [ -f "$G/devices" ] && [ -f "$G/mode" ] && ! [ "$CONF" -nt "$G/devices" ] && return 0
  mode=$(sed -n 's/^mode=//p' "$CONF")
  devs=$(sed -n 's/^declared=//p' "$CONF")
  printf '%s\n' "$(sed -n 's/^models=//p' "$CONF")" > "$G/.models.tmp" && \
    mv -f "$G/.models.tmp" "$G/models"
  if [ "$mode" != env ]; then
    found=$(nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null | tr -d ' ' | \
      tr '\n' ' ' | sed 's/ $//')
    [ -n "$found" ] && devs=$found
  fi
  printf '%s\n' "$mode" > "$G/.mode.tmp" && mv -f "$G/.mode.tmp" "$G/mode"
  printf '%s\n' "$devs" > "$G/.devices.tmp" && mv -f "$G/.devices.tmp" "$G/devices"
}

new_id() { od -An -N4 -tx1 /dev/urandom | tr -d ' \n'; }

# -- the queue's timer ----------------------------------------------------------------------

queue_service() {
  cat <<EOF
# Installed by hostctl: its job queue's periodic pass.
[Unit]
Description=hostctl job queue: reclaim what dead runs held, start queued runs
After=docker.service
# The helper leaves with the last job of the host (a deploy removes it): no failing passes.
ConditionFileIsExecutable=$SELF

[Service]
Type=oneshot
ExecStart=$SELF tick
EOF
}

queue_timer() {
  cat <<EOF
# Installed by hostctl: a pass of the job queue every $QUEUE_PERIOD and
# after boot (a run that was going when the host went down left GPU leases behind).
[Unit]
Description=hostctl job queue pass every $QUEUE_PERIOD

[Timer]
OnBootSec=$QUEUE_PERIOD
OnUnitActiveSec=$QUEUE_PERIOD
AccuracySec=1s

[Install]
WantedBy=timers.target
EOF
}

install_queue() {  # the units when they differ; --no-block: a unit's start may be calling
  [ -n "$UNITS" ] || return 0
  changed=
  for kind in service timer; do
    new=$UNITS/.$QUEUE.$kind.new
    queue_$kind > "$new"
    if cmp -s "$new" "$UNITS/$QUEUE.$kind"; then
      rm -f "$new"
    else
      chmod 0644 "$new" && mv -f "$new" "$UNITS/$QUEUE.$kind"
      echo "@@changed $UNITS/$QUEUE.$kind"; changed=1
    fi
  done
  [ -z "$changed" ] && return 0
  systemctl daemon-reload && systemctl enable --now --no-block "$QUEUE.timer" >/dev/null 2>&1
}

# Whatever takes a GPU (a run, a service) makes sure the timer that reclaims it runs, also on
# a host that only deploys reached: its first lease installs the timer.
queue_ready() {
  [ -z "$UNITS" ] || [ -e "$UNITS/$QUEUE.timer" ] || install_queue >/dev/null
}

# -- GPU leases --------------------------------------------------------------------------

devices() { cat "$G/devices" 2>/dev/null; }

# The host's devices of one of MODELS (comma-separated); every device when MODELS is empty.
devices_of() {  # [MODELS]
  [ -n "${1:-}" ] || { devices; return 0; }
  in_all=" $(devices | tr '\n' ' ') "
  for smi_dm in $(cat "$G/models" 2>/dev/null); do
    case ",$1," in *",${smi_dm#*:},"*)
      case $in_all in *" ${smi_dm%%:*} "*) printf '%s ' "${smi_dm%%:*}";; esac;;
    esac
  done
}

# Neither leased nor busy with a process hostctl did not start (foreign_scan).
free_devices() {  # [MODELS]
  for d in $(devices_of "${1:-}"); do
    [ -e "$G/lease/$d" ] || grep -q "^$d$TAB" "$G/foreign" 2>/dev/null || printf '%s ' "$d"
  done
}

# Which devices run a compute process that hostctl did not start, as nvidia-smi tells (once
# a pass, bounded): a device hostctl leased runs its holder's processes; an unleased device
# with a compute process is someone else's, and busy. No nvidia-smi (`gpu_mode: env` test
# hosts) or no answer: none known (logged), the leases alone decide.
NVSMI_TIMEOUT=10
foreign_scan() {
  SCANNED=1
  : > "$G/.foreign.tmp"
  if [ -n "$(devices)" ] && command -v nvidia-smi >/dev/null 2>&1; then
    if ! smi_apps=$(timeout "$NVSMI_TIMEOUT" nvidia-smi \
        --query-compute-apps=gpu_uuid,pid,process_name,used_memory --format=csv,noheader \
        2>/dev/null); then
      log "nvidia-smi did not list the GPUs' compute processes: leases alone decide"
    elif [ -n "$smi_apps" ]; then
      if smi_ids=$(timeout "$NVSMI_TIMEOUT" nvidia-smi --query-gpu=index,uuid --format=csv,noheader \
          2>/dev/null); then
        smi_leased=$(ls "$G/lease" 2>/dev/null | tr '\n' ' ')
        # GPU-UUID, PID, NAME, MEMORY a line (NAME may hold ", "); the indexes first.
        { printf '%s\n' "$smi_ids"; echo "@@apps"; printf '%s\n' "$smi_apps"; } | tr -d '\r' | \
          awk -F', *' -v leased=" $smi_leased " '
            $0 == "@@apps" { apps = 1; next }
            !apps { if (NF >= 2 && $1 ~ /^[0-9]+$/) idx[$2] = $1; next }
            NF >= 4 && ($1 in idx) && $2 ~ /^[0-9]+$/ {
              d = idx[$1]; if (index(leased, " " d " ")) next
              name = $3; for (i = 4; i < NF; i++) name = name ", " $i
              gsub(/[^A-Za-z0-9 ._:\/+=,@-]/, "?", name); mem = $NF
              gsub(/[^A-Za-z0-9 .]/, "", mem)
              print d "\t" $2 "\t" substr(name, 1, 80) "\t" mem }' > "$G/.foreign.tmp"
      else
        log "nvidia-smi did not list the GPUs' indexes: leases alone decide"
      fi
    fi
  fi
  mv -f "$G/.foreign.tmp" "$G/foreign"
}

reserved_gpus() {  # GPUs promised to services waiting for them (they go first)
  n=0
  for f in "$G"/want/*; do [ -f "$f" ] && n=$((n + $(cat "$f"))); done
  echo "$n"
}

release() {  # HOLDER: free every device it holds
  for f in "$G"/lease/*; do
    [ -f "$f" ] && [ "$(cat "$f")" = "$1" ] && rm -f "$f"
  done
  return 0
}

# The docker flags that give a run (or service) its devices, for the unit's $HOSTCTL_RUN_ARGS /
# $HOSTCTL_GPU_ARGS word. Quoted for systemd's EnvironmentFile= and then for its splitting of
# a $WORD: --gpus takes CSV, so `"device=0,1"` keeps its double quotes (docker/cli gpus.go).
gpu_words() {  # DEVICES (comma-separated, may be empty)
  [ -n "$1" ] || return 0
  if [ "$(cat "$G/mode" 2>/dev/null)" = env ]; then
    printf " '--env' '%s'" "HOSTCTL_GPU_DEVICES=$1"
  else
    printf " '--gpus' '%s'" "\\\"device=$1\\\""
  fi
}

# The run's own docker options, for the unit's $HOSTCTL_RUN_ARGS (quoted as gpu_words says):
# its env file, its GPUs, and its metrics directory RUNDIR/out (anyone may write there: the
# container's user is the image's) at /hostctl/out, named by HOSTCTL_METRICS. And the image
# its ${HOSTCTL_RUN_IMAGE} word runs, as image_for chose it (one word: no quotes needed, and
# image_for lets through only the characters of an image reference); none when it knew none
# (the unit's Environment= default, the spec's reference, applies).
write_unit_env() {  # ID DEVICES IMAGE
  { printf 'HOSTCTL_RUN_ARGS="%s%s%s"\n' "'--env-file' '$R/$1/env'" "$(gpu_words "$2")" \
      " '--mount' 'type=bind,src=$R/$1/out,dst=/hostctl/out'\
 '--env' 'HOSTCTL_METRICS=/hostctl/out/metrics.jsonl'"
    [ -z "$3" ] || printf 'HOSTCTL_RUN_IMAGE=%s\n' "$3"
  } > "$R/$1/.unit.env.tmp" && mv -f "$R/$1/.unit.env.tmp" "$R/$1/unit.env"
}

docker_bin() { d=$(conf docker); echo "${d:-docker}"; }

# The image id Docker has for REF, or nothing. Bounded: a hung dockerd must not hold the lock.
image_id_of() {  # REF
  timeout 15 "$(docker_bin)" image inspect --format '{{.Id}}' -- "$1" 2>/dev/null | head -n 1
}

# The image a starting run runs: its pinned id (`hostctl run --rerun`), else the id its
# reference resolves to now (recorded: what the run ran), else the reference itself (Docker
# pulls it). Prints the image word; exits 1 with the reason when the run cannot start.
image_for() {  # ID
  ref=$(get "$1" image)
  if [ -z "$ref" ] && [ -n "$UNITS" ]; then  # a run hostctl submitted before it sent it
    ref=$(sed -n 's/^Environment=HOSTCTL_RUN_IMAGE=//p' \
      "$UNITS/hostctl-job-$(get "$1" job)@.service" 2>/dev/null | head -n 1)
    [ -n "$ref" ] && put "$1" image "$ref"
  fi
  pin=$(get "$1" pin_image)
  case /$pin/$ref in *[!A-Za-z0-9._:/@-]*|*/-*)  # an option to docker run, not an image
    echo "its image reference is not one Docker takes"; return 1;; esac
  if [ -n "$pin" ]; then
    [ "$(image_id_of "$pin")" = "$pin" ] || {
      echo "the image $pin is gone from this host (a rerun runs the image id of the run" \
        "it repeats)"; return 1; }
    put "$1" image_id "$pin"; echo "$pin"; return 0
  fi
  [ -n "$ref" ] || return 0  # none known here: the unit's own (the spec's reference)
  idn=$(image_id_of "$ref")
  case $idn in sha256:*[!0-9a-f]*|sha256:) idn=;; sha256:*) ;; *) idn=;; esac
  if [ -n "$idn" ]; then put "$1" image_id "$idn"; echo "$idn"; else echo "$ref"; fi
}

# -- metrics -----------------------------------------------------------------------------

# A run's HOSTCTL_METRICS file, one JSON object a line: {"name": N, "value": V, "step": S}.
# Strict and POSIX (mawk, gawk, busybox awk): a line is valid when it is exactly one flat
# object whose keys are among name, value and step, each at most once, name and value
# present; name a string [A-Za-z_][A-Za-z0-9_.:/-]{0,63} (escapes allowed where they spell
# such characters), value a finite JSON number, step a JSON integer >= 0 (numbers of up
# to 1000 characters: the regular expressions only ever see that much of a line). A blank line is
# passed over; any other line is invalid. The first max valid points are kept (TSV to the
# file `tsv`), the rest dropped. Prints "metrics_points N", "metrics_invalid N",
# "metrics_dropped N" and "metrics JSON" (the summary; values as written). With partial=1
# the last line was cut by the size cap: not parsed (the caller counts it as dropped).
METRICS_AWK='
BEGIN {
  for (c = 32; c < 127; c++) { ch = sprintf("%c", c)
    if (ch ~ /^[A-Za-z0-9_.:\/-]$/) U[sprintf("%04x", c)] = ch }
  held = 0; points = 0; invalid = 0; dropped = 0; nn = 0
}
# Regular expressions written as literals: busybox awk compiles a string one at every use.
function skip() { if (match(s, /^[ \t\r]+/)) s = substr(s, RLENGTH + 1) }
# The text of a JSON string token (quotes included), decoded; "" when it holds anything but
# the characters of a metric name.
function name_of(tok,   out, i, c, h) {
  tok = substr(tok, 2, length(tok) - 2); out = ""
  while ((i = index(tok, "\\")) > 0) {
    out = out substr(tok, 1, i - 1); c = substr(tok, i + 1, 1)
    if (c == "/") { out = out "/"; tok = substr(tok, i + 2) }
    else if (c == "u") { h = tolower(substr(tok, i + 2, 4))
      if (!(h in U)) return ""
      out = out U[h]; tok = substr(tok, i + 6) }
    else return ""
  }
  out = out tok
  return out ~ /^[A-Za-z_][A-Za-z0-9_.:\/-]*$/ && length(out) <= 64 ? out : ""
}
# 1 when s (one line) is a valid point: sets pn, pv, ps (ps "" when it has no step).
function point(   key, got, tok, n) {
  pn = ""; pv = ""; ps = ""; got = ""
  skip(); if (substr(s, 1, 1) != "{") return 0
  s = substr(s, 2); skip()
  if (substr(s, 1, 1) == "}") return 0
  for (n = 0; n < 3; n++) {
    if (!match(substr(s, 1, 400), /^"([^"\\]|\\.)*"/)) return 0
    key = name_of(substr(s, 1, RLENGTH)); s = substr(s, RLENGTH + 1); skip()
    if (key != "name" && key != "value" && key != "step") return 0
    if (index(got, " " key)) return 0
    got = got " " key
    if (substr(s, 1, 1) != ":") return 0
    s = substr(s, 2); skip()
    if (key == "name") {
      if (!match(substr(s, 1, 400), /^"([^"\\]|\\.)*"/)) return 0
      pn = name_of(substr(s, 1, RLENGTH)); if (pn == "") return 0
    } else if (key == "value") {
      if (!match(substr(s, 1, 1000), /^-?(0|[1-9][0-9]*)([.][0-9]+)?([eE][+-]?[0-9]+)?/)) return 0
      pv = substr(s, 1, RLENGTH)
      # Overflows to infinity: not finite (busybox awk says inf != inf: compare its text).
      if (sprintf("%g", pv + 0) ~ /[iI][nN][fF]|[nN][aA][nN]/) return 0
    } else {
      if (!match(substr(s, 1, 1000), /^(0|[1-9][0-9]*)/)) return 0
      ps = substr(s, 1, RLENGTH)
    }
    s = substr(s, RLENGTH + 1); skip()
    c = substr(s, 1, 1); s = substr(s, 2)
    if (c == "}") { skip(); return s == "" && pn != "" && pv != "" }
    if (c != ",") return 0
    skip()
  }
  return 0
}
# Steps compared as integers of any size: by length, then as text.
function later(a, b) { return length(a) != length(b) ? length(a) > length(b) : a >= b }
function take(line) {
  s = line
  if (s ~ /^[ \t\r]*$/) return
  if (!point()) { invalid++; return }
  if (points >= max) { dropped++; return }
  points++
  printf "%s\t%s\t%s\n", pn, ps, pv > tsv
  v = pv + 0
  if (!(pn in cnt)) { names[++nn] = pn; lo[pn] = pv; hi[pn] = pv; best[pn] = "" }
  cnt[pn]++
  if (v < lo[pn] + 0) lo[pn] = pv
  if (v > hi[pn] + 0) hi[pn] = pv
  lastw[pn] = pv
  if (ps != "" && (best[pn] == "" || later(ps, best[pn]))) { best[pn] = ps; bestv[pn] = pv }
}
{ if (held) take(prev); prev = $0; held = 1 }
END {
  if (held && !partial) take(prev)
  out = ""
  for (i = 1; i <= nn; i++) { n = names[i]
    if (best[n] != "") { l = bestv[n]; st = best[n] } else { l = lastw[n]; st = "null" }
    out = out (i > 1 ? ", " : "") "\"" n "\": {\"last\": " l ", \"min\": " lo[n] \
      ", \"max\": " hi[n] ", \"n\": " cnt[n] ", \"step\": " st "}"
  }
  print "metrics_points " points; print "metrics_invalid " invalid
  print "metrics_dropped " dropped; print "metrics {" out "}"
}'

# Parse RUNDIR/out/metrics.jsonl into RUNDIR's metrics fields and metrics.tsv. The run's
# container wrote that directory: only a regular file is read (never a symlink, a FIFO or a
# device), at most METRICS_MAX_BYTES of it, each step bounded in time. Never fails.
metrics() {  # RUNDIR
  d=$1; f=$d/out/metrics.jsonl
  [ -d "$d" ] || return 0
  [ -f "$f" ] && [ ! -L "$f" ] || return 0
  size=$(stat -c %s -- "$f" 2>/dev/null); case $size in ''|*[!0-9]*) size=0;; esac
  partial=0; beyond=0
  if [ "$size" -gt "$METRICS_MAX_BYTES" ]; then
    # The line cut by the cap, and every line after it, are dropped: counted, not read.
    [ "$(timeout 10 tail -c +"$METRICS_MAX_BYTES" "$f" | head -c 1 | od -An -c | tr -d ' ')" \
      = '\n' ] || partial=1
    # Counted in the next 256 MiB at most: the run's stop must stay short (TimeoutStopSec),
    # and a file that large is not a metrics file gone a little over.
    beyond=$(timeout 10 tail -c +$((METRICS_MAX_BYTES + 1)) "$f" | head -c 268435456 | \
      wc -l | tr -d ' ')
    case $beyond in ''|*[!0-9]*) beyond=0;; esac
    [ "$(timeout 10 tail -c 1 "$f" | od -An -c | tr -d ' ')" = '\n' ] || beyond=$((beyond + 1))
  fi
  rm -f "$d/.metrics.tsv.tmp"
  timeout 20 head -c "$METRICS_MAX_BYTES" "$f" | \
    awk -v max="$METRICS_MAX_POINTS" -v tsv="$d/.metrics.tsv.tmp" -v partial="$partial" \
      "$METRICS_AWK" > "$d/.metrics.out" 2>/dev/null
  [ -f "$d/.metrics.tsv.tmp" ] || : > "$d/.metrics.tsv.tmp"
  mv -f "$d/.metrics.tsv.tmp" "$d/metrics.tsv"
  while read -r key value; do
    case $key in
      metrics_points|metrics_invalid|metrics_dropped)
        case $value in ''|*[!0-9]*) continue;; esac;;  # cut short (timeout): not a count
      metrics) ;;
      *) continue;;
    esac
    [ "$key" = metrics_dropped ] && value=$((value + beyond))
    printf '%s\n' "$value" > "$d/.$key.tmp" && mv -f "$d/.$key.tmp" "$d/$key"
  done < "$d/.metrics.out"
  rm -f "$d/.metrics.out"
}

# -- runs --------------------------------------------------------------------------------

finalize() {  # ID STATE EXIT NOTE
  fin_ms=$(now_ms)
  gpu_used "$1" "$fin_ms"
  put "$1" ended "$fin_ms"
  put "$1" exit "$3"
  [ -n "$4" ] && put "$1" note "$4"
  put "$1" state "$2"
  release "$1"
  rm -f "$A/$1" "$R/$1/waiting"
  history_add "$1" >> "$H"
}

# GPU time, for the projects' monthly budgets (quota-settle): a running run that used GPUs
# appends "PROJECT TAB NEED TAB STARTED TAB ENDED TAB DEVICES" (each attempt: a retry's too).
gpu_used() {  # ID END_MS
  [ "$(get "$1" state)" = running ] || return 0
  gu_n=$(get "$1" need); gu_t0=$(get "$1" started)
  case $gu_n in ''|0|*[!0-9]*) return 0;; esac
  case $gu_t0 in ''|*[!0-9]*) return 0;; esac
  printf '%s\t%s\t%s\t%s\t%s\n' "$(get "$1" project)" "$gu_n" "$gu_t0" "$2" \
    "$(get "$1" gpus)" >> "$G/run-usage"
}

# A service's GPU lease, for the same budgets: since/UNIT "N START_MS DEVICES" while it holds
# them; when it lets go (or reclaim finds it dead), "UNIT TAB N TAB START TAB END TAB DEVICES"
# in svc-usage.
svc_leased() {  # UNIT N DEVICES
  mkdir -p "$G/since"
  printf '%s %s %s\n' "$2" "$(now_ms)" "${3:-}" > "$G/since/.$1.tmp" && \
    mv -f "$G/since/.$1.tmp" "$G/since/$1"
}

svc_unleased() {  # UNIT
  [ -f "$G/since/$1" ] || return 0
  su_devs=
  read -r su_n su_t0 su_devs < "$G/since/$1"
  printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$su_n" "$su_t0" "$(now_ms)" "$su_devs" >> "$G/svc-usage"
  rm -f "$G/since/$1"
}

# The usage lines of runs and services that ended more than 400 days ago go (tick).
USAGE_KEEP_MS=34560000000
prune_usage() {
  cut=$(( $(now_ms) - USAGE_KEEP_MS ))
  for f in "$G/run-usage" "$G/svc-usage"; do
    [ -s "$f" ] || continue
    awk -F'\t' -v cut="$cut" '$4 + 0 < cut { old = 1; exit } END { exit !old }' "$f" || continue
    awk -F'\t' -v cut="$cut" '$4 + 0 >= cut' "$f" > "$f.tmp" && mv -f "$f.tmp" "$f"
  done
}

# -- history and retention ---------------------------------------------------------------

# A run's fields as the read script prints them, for the history: not its env files (the
# --set values; the read script never shows them), its cancel flag, its points or out/.
history_add() {  # ID
  (cd "$R" && for f in "$1"/*; do
     case ${f##*/} in env|unit.env|cancel|metrics.tsv|out) continue;; esac
     [ -f "$f" ] && [ ! -L "$f" ] && printf '%s\n' "$f"
   done | xargs -r grep -s -H '' --)
}

history_init() {  # once, on a host that kept runs before the history existed
  mkdir -p "$R"
  ls "$R" | while read -r id; do
    [ -e "$A/$id" ] || [ ! -d "$R/$id" ] || history_add "$id"
  done > "$H.tmp" && mv -f "$H.tmp" "$H"
}

# Retention: of each job's ended runs, the last keep_runs (by end time) stay; the others'
# directories go, then their history lines (rewritten aside and renamed): a crash between
# the two leaves lines the next pass removes. Active runs are never in the history, and
# never removed. The artifacts volumes are not touched.
prune() {
  keep=$(conf keep_runs)
  case $keep in ''|*[!0-9]*) keep=$KEEP_RUNS;; esac
  [ -s "$H" ] || return 0
  awk -F'/' '{ id = $1; rest = substr($0, length(id) + 2); i = index(rest, ":")
      if (i == 0) next
      f = substr(rest, 1, i - 1); v = substr(rest, i + 1)
      if (f == "job") job[id] = v; else if (f == "ended") end[id] = v; else if (f == "seq") seq[id] = v
      seen[id] = 1 }
    END { for (id in seen) printf "%s\t%s\t%s\t%s\n", job[id], end[id], seq[id], id }' "$H" | \
    sort -t "$(printf '\t')" -k1,1 -k2,2nr -k3,3nr | \
    awk -F'\t' -v keep="$keep" '{ if (++n[$1] > keep) print $4 }' > "$S/.prune"
  [ -s "$S/.prune" ] || return 0
  while read -r id; do
    [ -n "$id" ] && [ ! -e "$A/$id" ] && rm -rf "${R:?}/$id"
  done < "$S/.prune"
  awk -F'/' 'NR == FNR { gone[$0] = 1; next } !($1 in gone)' "$S/.prune" "$H" > "$H.tmp" && \
    mv -f "$H.tmp" "$H"
}

submit() {  # ID...: prepared directories become queued runs, in the order given
  for id in "$@"; do
    [ -d "$R/.new-$id" ] || { log "no prepared run $id"; continue; }
    [ -e "$R/$id" ] && { log "run $id exists already"; continue; }
    seq=$(( $(cat "$S/jobs.seq" 2>/dev/null || echo 0) + 1 ))
    echo "$seq" > "$S/jobs.seq"
    printf '%s\n' "$seq" > "$R/.new-$id/seq"
    printf '%s\n' queued > "$R/.new-$id/state"
    mv "$R/.new-$id" "$R/$id" && : > "$A/$id"
  done
}

prepare_from_unit() {  # ID TRIGGER [SHARD COUNT]: a run started by a timer or by hand,
  # described by the HOSTCTL_JOB_* settings its unit carries (from the rendered spec). Its
  # experiment is the job's name (hostctl run's default where no git branch is known).
  d=$R/.new-$1
  rm -rf "$d" && mkdir -p "$d" || return 1
  for kv in "job=$JOB" "project=${HOSTCTL_JOB_PROJECT:-}" "host=${HOSTCTL_JOB_HOST:-}" \
      "unit=hostctl-job-$JOB@$1.service" "need=${HOSTCTL_JOB_GPUS:-0}" \
      "cpus=${HOSTCTL_JOB_CPUS:-0}" "memory=${HOSTCTL_JOB_MEMORY:-0}" \
      "attempts=${HOSTCTL_JOB_ATTEMPTS:-1}" "attempt=1" "group=${GROUP:-$1}" "by=$2" \
      "shard=${3:-0}" "shards=${4:-1}" "submitted=$(now_ms)" \
      "image=${HOSTCTL_RUN_IMAGE:-}" "experiment=$JOB" "priority=$(priority_of_unit)"; do
    printf '%s\n' "${kv#*=}" > "$d/${kv%%=*}"
  done
  # Its project's quota governs this host (an allotment): it waits for it like a run
  # hostctl queued as waiting for quota.
  if project_ok "${HOSTCTL_JOB_PROJECT:-}" && [ -f "$S/quota/$HOSTCTL_JOB_PROJECT" ]; then
    echo quota > "$d/hold"
  fi
  [ -z "${HOSTCTL_JOB_GPU_MODELS:-}" ] || \
    printf '%s\n' "$HOSTCTL_JOB_GPU_MODELS" > "$d/gpu_models"
  printf 'HOSTCTL_RUN_ID=%s\nHOSTCTL_SHARD_INDEX=%s\nHOSTCTL_SHARD_COUNT=%s\n' \
    "$1" "${3:-0}" "${4:-1}" > "$d/env"
}

priority_of_unit() {
  case ${HOSTCTL_JOB_PRIORITY:-} in high|low) echo "$HOSTCTL_JOB_PRIORITY";; *) echo normal;; esac
}

reclaim() {  # runs whose unit is gone without reporting, leases nobody holds any more
  now=$(now_ms)
  ids=""; units=""
  for f in "$A"/*; do
    [ -e "$f" ] || continue
    id=${f##*/}
    case $(get "$id" state) in starting|running)
      ids="$ids $id"; units="$units $(get "$id" unit)";;
    esac
  done
  if [ -n "$ids" ]; then
    # One systemctl call for all of them: one answer line per unit, in order.
    systemctl is-active $units > "$S/.reclaim" 2>/dev/null
    set -- $ids
    while read -r active; do
      id=$1; shift
      case $active in active|activating|deactivating|reloading|refreshing) continue;; esac
      st=$(get "$id" state)
      if [ "$st" = running ]; then
        finalize "$id" failed "" "lost: its unit ended without reporting (host or systemd down?)"
      elif [ -e "$R/$id/cancel" ]; then
        finalize "$id" cancelled "" ""
      elif [ $((now - $(get "$id" changed || echo 0))) -gt "$START_GRACE_MS" ]; then
        release "$id"; put "$id" gpus ""; put "$id" state queued
      fi
    done < "$S/.reclaim"
  fi
  for f in "$G"/lease/*; do
    [ -f "$f" ] || continue
    holder=$(cat "$f")
    case $holder in
      svc:*) case $(systemctl is-active "${holder#svc:}") in
               active|activating|deactivating|reloading) ;;
               *) rm -f "$f"; svc_unleased "${holder#svc:}";; esac;;
      *) case $(get "$holder" state) in starting|running) ;; *) rm -f "$f";; esac;;
    esac
  done
  for f in "$G"/want/*; do
    [ -f "$f" ] || continue
    case $(systemctl is-active "${f##*/}") in activating|deactivating) ;; *) rm -f "$f";; esac
  done
}

# Decide which queued runs start. Queue order: effective level descending, then seq (first
# come, first served within a level); a run's level is its priority's (high 2, normal 1,
# low 0) plus one per AGE_STEP_MS it has waited since it was submitted, at most 2: nothing
# starves. Before the start decisions, held runs (hold=quota) of each governed project are
# promoted, strictly in queue order: while the project's admitted asks plus the run's fit its
# allotment in every limited dimension, the hold goes; the first that does not fit ends the
# project's promotions. A held run of a project with no allotment here is released. A held
# run never starts and never stops the line. Every run needs CPU and memory, so a run that
# does not fit stops the line; a run waiting for GPUs stops only the runs behind it that need
# GPUs too (a CPU-only run can still start), and a run waiting for GPUs of some models
# (gpu_models) holds back only the devices of those models.
# Input: "@quota P CPU MEM GPUS" lines (the allotments), then "ID/FIELD:VALUE" lines of the
# active runs; models: "DEV:MODEL ..." (the devices the inventory names a model for).
# Prints "promote ID" (its hold goes), "fail ID REASON", "start ID DEVICES", then "same ID..."
# (the waiting runs whose `waiting` field is already right) and "wait ID POS REASON" for
# every queued run it does not start: POS its place among them in queue order, REASON one of
# quota, retry back-off, GPUs, CPUs, memory, "behind N run(s)" (N: unheld waiting runs ahead).
# With mode=settle (quota-settle) it decides nothing and prints the projects' answer instead.
AGE_STEP_MS=1800000
QUEUE_AWK='
$1 == "@quota" { qd[$2] = 1; qc[$2] = lim($3); qm[$2] = lim($4); qg[$2] = lim($5); next }
$1 == "@run" { ru[++nru] = $0; next }
$1 == "@svc" || $1 == "@since" { su[++nsu] = $0; next }
{ split($0, kv, ":"); split(kv[1], p, "/"); id = p[1]
  val[id, p[2]] = substr($0, length(kv[1]) + 2)
  if (!(id in seen)) { seen[id] = 1; ids[++k] = id } }
function lim(x) { return x == "-" ? "-" : x ~ /^[0-9]+$/ ? x + 0 : 0 }
function cpu(id) { c = val[id, "cpus"] + 0; if (c <= 0) c = 1000; return c > cap_cpu ? cap_cpu : c }
function mem(id) { m = val[id, "memory"] + 0; return m > cap_mem ? cap_mem : m }
# What a run asks of its project quota: not capped by this host.
function ask_cpu(id,   x) { x = val[id, "cpus"] + 0; return x <= 0 ? 1000 : x }
function ask_mem(id,   x) { x = val[id, "memory"] + 0; return x < 0 ? 0 : x }
function ask_gpu(id,   x) { x = val[id, "need"] + 0; return x < 0 ? 0 : x }
function prio(id) { return val[id, "priority"] == "high" || val[id, "priority"] == "low" ? \
  val[id, "priority"] : "normal" }
function level(id,   b, s) {
  b = prio(id) == "high" ? 2 : prio(id) == "low" ? 0 : 1
  s = val[id, "submitted"] + 0
  if (s > 0 && now > s) b += int((now - s) / age_step)
  return b > 2 ? 2 : b }
function before(a, b) { return lv[a] != lv[b] ? lv[a] > lv[b] : val[a, "seq"] + 0 < val[b, "seq"] + 0 }
function fits(P, id) {
  return (qc[P] == "-" || ac[P] + ask_cpu(id) <= qc[P]) && \
    (qm[P] == "-" || am_[P] + ask_mem(id) <= qm[P]) && (qg[P] == "-" || ag[P] + ask_gpu(id) <= qg[P]) }
function admit_q(P, id) { ac[P] += ask_cpu(id); am_[P] += ask_mem(id); ag[P] += ask_gpu(id) }
function okdev(d, acc) { return acc == "" || index("," acc ",", "," model[d] ",") > 0 }
function waits(id, why) { wid[++nw] = id; wwhy[nw] = why }
# GPU-milliseconds of [s, e) within the month (from ms0).
function span(n, s, e) { if (s < ms0) s = ms0; return e > s ? n * (e - s) : 0 }
# The GPU time of N devices DEVS (comma-separated; may be empty) over [s, e) by model into
# byModel[KEY, MODEL] ("-": no model known), keys listed in mkeys.
function by_model(key, n, devs, s, e,   nd, dv, x, md) {
  nd = devs == "" ? 0 : split(devs, dv, ",")
  if (nd == 0) { add_model(key, "-", span(n, s, e)); return }
  for (x = 1; x <= nd; x++) { md = (dv[x] in model) ? model[dv[x]] : "-"
    add_model(key, md, span(1, s, e)) }
}
function add_model(key, md, t) {
  if (t <= 0) return
  if (!((key, md) in bym)) mkeys[++nmk] = key SUBSEP md
  bym[key, md] += t
}
function settle(   i, j, n, P, id, u, t, f, pl, kk) {
  n = split(projects, pl, " ")
  for (i = 1; i <= nru; i++) {  # "@run TAB PROJECT TAB N TAB START TAB END [TAB DEVICES]"
    split(ru[i], f, "\t"); gm[f[2]] += span(f[3] + 0, f[4] + 0, f[5] + 0)
    by_model("run" SUBSEP f[2], f[3] + 0, f[6], f[4] + 0, f[5] + 0) }
  for (i = 1; i <= k; i++) { id = ids[i]
    if (val[id, "state"] == "running" && val[id, "started"] + 0 > 0) {
      gm[val[id, "project"]] += span(ask_gpu(id), val[id, "started"] + 0, now)
      by_model("run" SUBSEP val[id, "project"], ask_gpu(id), val[id, "gpus"],
               val[id, "started"] + 0, now) } }
  for (i = 1; i <= n; i++) { P = pl[i]
    printf "@@quota %s %.0f %.0f %.0f\n", P, ac[P], am_[P], ag[P]
    for (j = 1; j <= nq; j++) { id = q[j]
      if (val[id, "hold"] != "" && val[id, "project"] == P)
        printf "@@held %s %s %s %.0f %.0f %.0f %.0f\n", P, id, prio(id), val[id, "submitted"] + 0, \
          ask_cpu(id), ask_mem(id), ask_gpu(id) }
    printf "@@gpu_ms %s %.0f\n", P, gm[P] }
  if (all_projects) for (P in gm) if (P != "") printf "@@gpu_ms %s %.0f\n", P, gm[P]
  for (i = 1; i <= nsu; i++) {  # "@svc UNIT N START END [DEVICES]", "@since UNIT N START [DEVICES]"
    split(su[i], f, " ")
    if (f[1] == "@since") { svc[f[2]] += span(f[3] + 0, f[4] + 0, now)
      by_model("svc" SUBSEP f[2], f[3] + 0, f[5], f[4] + 0, now); continue }
    t = span(f[3] + 0, f[4] + 0, f[5] + 0); if (t > 0) svc[f[2]] += t
    by_model("svc" SUBSEP f[2], f[3] + 0, f[6], f[4] + 0, f[5] + 0) }
  n = 0; for (u in svc) { for (i = n; i >= 1 && su_[i] > u; i--) su_[i + 1] = su_[i]
    su_[i + 1] = u; n++ }
  for (i = 1; i <= n; i++) printf "@@svc_gpu_ms %s %.0f\n", su_[i], svc[su_[i]]
  # By model, for the cost: "@@gpu_model_ms run PROJECT MODEL MS", "... svc UNIT MODEL MS".
  for (i = 1; i <= nmk; i++) { split(mkeys[i], kk, SUBSEP)
    if (kk[1] == "svc" || all_projects || index(" " projects " ", " " kk[2] " "))
      printf "@@gpu_model_ms %s %s %s %.0f\n", kk[1], kk[2], kk[3], bym[kk[1], kk[2], kk[3]] }
}
END {
  nfree = split(free, fd, " "); nf = nfree - reserved; ndev = split(all, ad, " ")
  nm = split(models, mm, " ")
  for (i = 1; i <= nm; i++) { j = index(mm[i], ":"); model[substr(mm[i], 1, j - 1)] = substr(mm[i], j + 1) }
  for (i = 1; i <= k; i++) {
    id = ids[i]; st = val[id, "state"]
    if (st == "starting" || st == "running") { used_cpu += cpu(id); used_mem += mem(id) }
    else if (st == "queued") { q[++nq] = id; lv[id] = level(id) }
    if ((st == "queued" || st == "starting" || st == "running") && val[id, "hold"] == "")
      admit_q(val[id, "project"], id)
  }
  for (i = 2; i <= nq; i++) {  # insertion sort into queue order
    x = q[i]; for (j = i - 1; j >= 1 && before(x, q[j]); j--) q[j + 1] = q[j]
    q[j + 1] = x
  }
  if (mode == "settle") { settle(); exit }
  for (i = 1; i <= nq; i++) {  # promotions, strictly in queue order per project
    id = q[i]; P = val[id, "project"]
    if (val[id, "hold"] == "" || (P in stop)) continue
    if ((P in qd) && !fits(P, id)) { stop[P] = 1; continue }
    if (P in qd) admit_q(P, id)
    val[id, "hold"] = ""; print "promote", id
  }
  taken = 0; gpu_wait = 0; stopped = 0; nw = 0
  for (i = 1; i <= nq; i++) {
    id = q[i]; g = val[id, "need"] + 0; acc = g > 0 ? val[id, "gpu_models"] : ""
    if (val[id, "hold"] != "") { waits(id, "quota"); continue }
    if (val[id, "not_before"] + 0 > now) { waits(id, "retry back-off"); continue }
    if (stopped) { waits(id, "behind"); continue }
    if (acc == "" && g > ndev) { print "fail", id, "needs " g " GPU(s); this host has " ndev; continue }
    if (acc != "") {
      have = 0; for (j = 1; j <= ndev; j++) if (okdev(ad[j], acc)) have++
      if (g > have) {
        shown = acc; gsub(/,/, " or ", shown)
        print "fail", id, "needs " g " GPU(s) of model " shown "; this host has " have; continue
      }
    }
    if (used_cpu + cpu(id) > cap_cpu) { stopped = 1; waits(id, "CPUs"); continue }
    if (used_mem + mem(id) > cap_mem) { stopped = 1; waits(id, "memory"); continue }
    devs = ""
    if (g > 0) {
      n = 0; could = 0
      for (j = 1; j <= nfree; j++) if (!used[j] && okdev(fd[j], acc)) could++
      if (!gpu_wait && taken + g <= nf)
        for (j = 1; j <= nfree && n < g; j++)
          if (!used[j] && !(model[fd[j]] in held) && okdev(fd[j], acc)) pk[++n] = j
      if (n < g) {  # it waits: what it could take is held back from the runs behind it
        # Free devices it could take, kept for a GPU run ahead of it: it is behind that run.
        waits(id, taken + g <= nf && could >= g ? "behind" : "GPUs")
        if (acc == "") gpu_wait = 1
        else { na = split(acc, am, ","); for (j = 1; j <= na; j++) held[am[j]] = 1 }
        continue
      }
      for (j = 1; j <= g; j++) { used[pk[j]] = 1; devs = devs (j > 1 ? "," : "") fd[pk[j]] }
      taken += g
    }
    used_cpu += cpu(id); used_mem += mem(id)
    print "start", id, devs
  }
  same = ""; ahead = 0
  for (i = 1; i <= nw; i++) {
    why = wwhy[i]
    if (why == "behind") why = "behind " ahead " run(s)"
    if (wwhy[i] != "quota") ahead++
    wline[i] = i " " why
    if (val[wid[i], "waiting"] == wline[i]) same = same " " wid[i]
  }
  if (same != "") print "same" same
  for (i = 1; i <= nw; i++) print "wait", wid[i], wline[i]
}'

# The queue's awk input: the allotments, then the fields of every active run ($S/.active).
queue_input() {
  for f in "$S"/quota/*; do
    [ -f "$f" ] && printf '@quota %s %s\n' "${f##*/}" "$(head -n 1 "$f")"
  done
  (cd "$R" && while read -r id; do
      for f in seq state need cpus memory not_before gpu_models project priority hold gpus \
          submitted waiting started; do echo "$id/$f"; done
    done < "$S/.active" | xargs -r grep -H '' 2>/dev/null)
}

queue_awk() {  # VAR=VALUE...: awk's variables beside now and age_step
  awk -v now="$(now_ms)" -v age_step="$AGE_STEP_MS" "$@" "$QUEUE_AWK"
}

dispatch() {  # lock held. $SELF_ID (admit of that run) is started by its caller, not here.
  # A finishing run released what it held itself: skip the reclaim pass (a systemctl call
  # per pass) on that path, the busiest one; every other way in reclaims first.
  [ -n "${NO_RECLAIM:-}" ] || reclaim
  ls "$A" > "$S/.active" 2>/dev/null
  [ -s "$S/.active" ] || return 0
  [ -n "${SCANNED:-}" ] || foreign_scan
  cap_cpu=$(( $(nproc) * 1000 ))
  # %.0f, not %d: mawk (Debian's awk) prints no %d above 2^31 - 1, so 2 GiB at most.
  cap_mem=$(awk '/^MemTotal:/ { printf "%.0f", $2 * 1024 }' /proc/meminfo)
  free=$(free_devices)
  decisions=$(queue_input | queue_awk -v cap_cpu="$cap_cpu" -v cap_mem="$cap_mem" \
        -v free="$free" -v all="$(devices)" -v models="$(cat "$G/models" 2>/dev/null)" \
        -v reserved="$(reserved_gpus)")
  [ -n "$decisions" ] || return 0
  same=""
  echo "$decisions" | while read -r verb id devs; do
    case $verb in
      promote) rm -f "$R/$id/hold"; continue;;
      same) same=" $id $devs "; continue;;
      wait) case $same in *" $id "*) ;; *) put "$id" waiting "$devs";; esac; continue;;
      fail) finalize "$id" failed "" "$devs"; continue;;
    esac
    if ! image=$(image_for "$id"); then
      finalize "$id" failed "" "$image"
      continue
    fi
    # Its metrics directory, empty for each attempt (the last attempt's metrics count).
    rm -rf "${R:?}/$id/out"
    (cd "$R/$id" && rm -f metrics metrics.tsv metrics_points metrics_invalid metrics_dropped \
      waiting)
    mkdir "$R/$id/out" && chmod 1777 "$R/$id/out"
    for d in $(echo "$devs" | tr ',' ' '); do printf '%s\n' "$id" > "$G/lease/$d"; done
    put "$id" gpus "$devs"
    write_unit_env "$id" "$devs" "$image"
    put "$id" changed "$(now_ms)"
    put "$id" state starting
    [ "$id" = "${SELF_ID:-}" ] && continue
    # --no-block: the unit's own admit takes this lock, so waiting here would deadlock.
    if ! out=$(systemctl start --no-block "$(get "$id" unit)" 2>&1); then
      finalize "$id" failed "" "could not start its unit: $(echo "$out" | tail -n 1)"
    fi
  done
}

admit() {  # JOB ID
  JOB=$1; id=$2
  locked
  queue_ready
  if [ "$id" = scheduled ]; then
    # The timer always starts the same instance: give this run (each shard of it) its own
    # id and record, and let the queue start them; this activation itself runs nothing.
    GROUP=$(new_id)
    n=${HOSTCTL_JOB_SHARDS:-1}
    if [ "$n" -le 1 ]; then
      prepare_from_unit "$GROUP" timer && submit "$GROUP"
    else
      i=0; ids=""
      while [ "$i" -lt "$n" ]; do
        prepare_from_unit "$GROUP-$i" timer "$i" "$n"; ids="$ids $GROUP-$i"; i=$((i + 1))
      done
      submit $ids
    fi
    dispatch
    log "scheduled run queued as run $GROUP ($n shard(s))"
    exit 1
  fi
  st=$(get "$id" state)
  if [ -z "$st" ]; then
    # Started by hand (systemctl start): the run gets a record and waits its turn like any.
    prepare_from_unit "$id" systemctl && submit "$id"
    SELF_ID=$id; dispatch; SELF_ID=
    st=$(get "$id" state)
    [ "$st" = starting ] || { log "run $id queued: waiting for room on this host"; exit 1; }
  fi
  case $st in
    starting)
      put "$id" started "$(now_ms)"
      put "$id" state running
      exit 0;;
    *) log "run $id is $st: not started"; exit 1;;
  esac
}

# What `docker run` exits with when the run never got going: 125 Docker itself failed (no
# such image, a refused option), 126 the command cannot be invoked, 127 no such command.
# Trying again would fail the same way: such a run fails at once, whatever its retries.
start_error() {  # EXIT_STATUS: the reason, or nothing when the run itself failed
  case $1 in
    125) echo "docker could not start it (exit 125)";;
    126) echo "its command could not be invoked (exit 126)";;
    127) echo "its command was not found (exit 127)";;
  esac
}

# The last line the run's unit printed (docker's own error for a start error, not systemd's
# or this helper's lines), one line of at most 300 characters; bounded in time.
last_said() {  # UNIT
  timeout 5 journalctl "_SYSTEMD_UNIT=$1" -n 10 -o cat --no-pager 2>/dev/null | \
    grep -v -e '^hostctl-jobs: ' -e 'docker run --help' -e '^[[:space:]]*$' | tail -n 1 | \
    tr -d '\000-\037' | cut -c1-300
}

finished() {  # JOB ID, with systemd's SERVICE_RESULT, EXIT_CODE, EXIT_STATUS
  id=$2
  why=""; said=""
  [ "${SERVICE_RESULT:-}" = exit-code ] && why=$(start_error "${EXIT_STATUS:-}")
  # Before the lock (reading the file takes a moment; the container is gone by now).
  if [ "$(get "$id" state)" = running ]; then
    [ -n "$why" ] && said=$(last_said "$(get "$id" unit)")
    # In a subshell: whatever the file holds, the outcome below is recorded.
    ( metrics "$R/$id" ) || log "run $id: its metrics could not be read"
    if [ -z "$(get "$id" image_id)" ] && [ -n "$(get "$id" image)" ]; then
      # Docker pulled the reference when the run started: the id it ran, as far as can be told.
      idn=$(image_id_of "$(get "$id" image)")
      case $idn in sha256:*[!0-9a-f]*|sha256:) ;; sha256:*) put "$id" image_id "$idn";; esac
    fi
  fi
  locked
  st=$(get "$id" state)
  if [ "$st" != running ]; then dispatch; exit 0; fi
  result=${SERVICE_RESULT:-}
  code=${EXIT_STATUS:-}
  if [ -e "$R/$id/cancel" ]; then outcome=cancelled
  elif [ "$result" = timeout ]; then outcome=timed-out
  elif [ "$result" = success ]; then outcome=succeeded
  else outcome=failed; fi
  attempt=$(get "$id" attempt); attempts=$(get "$id" attempts)
  if [ "$outcome" = failed ] && [ -n "$why" ]; then
    finalize "$id" failed "$code" "$why: not retried${said:+ ($said)}"
    log "run $id failed: $why; not retried${said:+: $said}"
  elif [ "$outcome" = failed ] && [ "${attempt:-1}" -lt "${attempts:-1}" ]; then
    gpu_used "$id" "$(now_ms)"
    delay=$((BACKOFF_BASE << (attempt - 1)))
    [ "$delay" -gt "$BACKOFF_MAX" ] && delay=$BACKOFF_MAX
    put "$id" exit "$code"
    put "$id" note "attempt $attempt failed (exit $code); retried after ${delay}s"
    put "$id" attempt $((attempt + 1))
    put "$id" not_before $(( $(now_ms) + delay * 1000 ))
    release "$id"
    put "$id" gpus ""
    put "$id" state queued
    # A one-off timer wakes the queue when the back-off ends.
    systemd-run --quiet --unit="hostctl.retry-$id-$attempt" --on-active="${delay}s" \
      --timer-property=AccuracySec=100ms "$SELF" dispatch >/dev/null 2>&1 || \
      log "could not set the retry timer: the queue's own timer retries later"
    log "run $id: attempt $attempt of $attempts failed (exit $code); retry in ${delay}s"
  else
    note=""
    [ "$outcome" = failed ] && [ "${attempts:-1}" -gt 1 ] && note="failed $attempts attempts"
    finalize "$id" "$outcome" "$code" "$note"
    log "run $id $outcome (exit $code)"
  fi
  NO_RECLAIM=1
  dispatch
}

cancel() {  # ID
  id=$1
  locked
  st=$(get "$id" state)
  case $st in
    "") echo "@@cancel $id unknown";;
    queued|starting)
      finalize "$id" cancelled "" "cancelled before it started"
      [ "$st" = starting ] && systemctl stop --no-block "$(get "$id" unit)" 2>/dev/null
      echo "@@cancel $id cancelled";;
    running)
      : > "$R/$id/cancel"
      systemctl stop --no-block "$(get "$id" unit)"
      echo "@@cancel $id stopping";;
    *) echo "@@cancel $id $st";;
  esac
  dispatch
}

lease_service() {  # UNIT N [MODELS]: a service takes N GPUs (of one of MODELS) before its
  # container starts
  unit=$1; n=$2; models=${3:-}
  of=""; [ -z "$models" ] || of=" of model $(echo "$models" | sed 's/,/ or /g')"
  locked
  queue_ready
  release "svc:$unit"   # what it held before a restart
  svc_unleased "$unit"
  reclaim               # and what dead runs and services held
  total=$(devices_of "$models" | wc -w)
  if [ "$n" -gt "$total" ]; then
    log "$unit cannot start: it needs $n GPU(s)$of and this host has $total"
    exit 1
  fi
  foreign_scan
  set -- $(free_devices "$models")
  if [ "$#" -lt "$n" ]; then
    # Promised to it: queued runs leave them alone (reserved_gpus) until it starts or stops.
    echo "$n" > "$G/want/$unit"
    log "$unit cannot start: it needs $n GPU(s)$of and $# of this host's $total are free" \
      "(held by$(holders))$(foreign_note); it takes the next ones released (systemd" \
      "retries it)"
    exit 1
  fi
  devs=""
  i=0
  while [ "$i" -lt "$n" ]; do
    printf 'svc:%s\n' "$unit" > "$G/lease/$1"
    devs="$devs${devs:+,}$1"; shift; i=$((i + 1))
  done
  rm -f "$G/want/$unit"
  [ "$n" -gt 0 ] && svc_leased "$unit" "$n" "$devs"
  mkdir -p "$S/svc"
  printf 'HOSTCTL_GPU_ARGS="%s"\n' "$(gpu_words "$devs")" > "$S/svc/.$unit.tmp" && \
    mv -f "$S/svc/.$unit.tmp" "$S/svc/$unit.env"
  log "$unit holds GPU(s) $devs"
}

holders() {  # " DEV=HOLDER" for every leased device
  for f in "$G"/lease/*; do [ -f "$f" ] && printf ' %s=%s' "${f##*/}" "$(cat "$f")"; done
}

foreign_note() {  # "; busy with processes hostctl did not start: DEV (pid PID NAME) ..."
  [ -s "$G/foreign" ] || return 0
  printf '; busy with processes hostctl did not start:'
  while IFS="$TAB" read -r d pid name mem; do
    printf ' %s (pid %s %s, %s)' "$d" "$pid" "$name" "$mem"
  done < "$G/foreign"
}

release_service() {  # UNIT. Its want (if it waits for GPUs) stays while systemd restarts it:
  # reclaim drops it once the unit is neither starting nor stopping.
  locked
  release "svc:$1"
  svc_unleased "$1"
  dispatch
}

# -- project quotas ------------------------------------------------------------------------

# A project's name as a file name under $S/quota: what the inventory allows, nothing else.
project_ok() { case $1 in ''|.*|*[!A-Za-z0-9._-]*) return 1;; esac; }

# Epoch ms of the start of the current calendar month, UTC (days from the civil date).
month_start_ms() {
  case ${HOSTCTL_MONTH_START_MS:-} in
    ''|*[!0-9]*) ;;
    *) echo "$HOSTCTL_MONTH_START_MS"; return 0;;
  esac
  date -u '+%Y %m' | awk '{ y = $1 + 0; m = $2 + 0; if (m <= 2) y--
    era = int(y / 400); yoe = y - era * 400; mp = (m + 9) % 12
    doe = yoe * 365 + int(yoe / 4) - int(yoe / 100) + int((153 * mp + 2) / 5)
    printf "%.0f", (era * 146097 + doe - 719468) * 86400000 }'
}

quota_settle() {  # P...
  for p in "$@"; do project_ok "$p" || { log "not a project name: '$p'"; exit 2; }; done
  locked
  mkdir -p "$S/quota"
  ls "$A" > "$S/.active" 2>/dev/null
  out=$({ queue_input
          [ -f "$G/run-usage" ] && sed "s/^/@run$TAB/" "$G/run-usage"
          [ -f "$G/svc-usage" ] && sed "s/^/@svc$TAB/" "$G/svc-usage"
          for f in "$G"/since/*; do
            [ -f "$f" ] && printf '@since %s %s\n' "${f##*/}" "$(head -n 1 "$f")"; done
        } | queue_awk -v mode=settle -v projects="$*" -v ms0="$(month_start_ms)" \
            -v models="$(cat "$G/models" 2>/dev/null)")
  printf '%s\n' "$out" | while read -r tag p c m g; do
    [ "$tag" = @@quota ] || continue
    printf '%s %s %s\n' "$c" "$m" "$g" > "$S/quota/.$p.tmp" && mv -f "$S/quota/.$p.tmp" "$S/quota/$p"
  done
  [ -z "$out" ] || printf '%s\n' "$out"
}

# Read only (`hostctl projects`): the month's GPU time of every project's runs and of every
# service unit, the lines quota-settle prints, with no allotment touched.
usage() {
  locked
  ls "$A" > "$S/.active" 2>/dev/null
  { queue_input
    [ -f "$G/run-usage" ] && sed "s/^/@run$TAB/" "$G/run-usage"
    [ -f "$G/svc-usage" ] && sed "s/^/@svc$TAB/" "$G/svc-usage"
    for f in "$G"/since/*; do
      [ -f "$f" ] && printf '@since %s %s\n' "${f##*/}" "$(head -n 1 "$f")"; done
  } | queue_awk -v mode=settle -v projects="" -v all_projects=1 -v ms0="$(month_start_ms)" \
    -v models="$(cat "$G/models" 2>/dev/null)"
}

quota_grant() {  # P CPU_MILLI MEM_BYTES GPUS (each an integer to add, or - for no limit)
  [ "$#" -eq 4 ] && project_ok "$1" || { log "usage: quota-grant PROJECT CPU MEM GPUS"; exit 2; }
  for v in "$2" "$3" "$4"; do
    case $v in -) ;; ''|*[!0-9]*) log "quota-grant: not an integer or -: '$v'"; exit 2;; esac
  done
  locked
  mkdir -p "$S/quota"
  old=$(head -n 1 "$S/quota/$1" 2>/dev/null)
  new=$(echo "$old" | awk -v add="$2 $3 $4" '{ split(add, a, " ")
    for (i = 1; i <= 3; i++) { o = $i; if (o != "-" && o !~ /^[0-9]+$/) o = 0
      printf "%s%s", (i > 1 ? " " : ""), ((a[i] == "-" || o == "-") ? "-" : sprintf("%.0f", o + a[i])) }
    print "" }')
  printf '%s\n' "$new" > "$S/quota/.$1.tmp" && mv -f "$S/quota/.$1.tmp" "$S/quota/$1"
  echo "@@allot $1 $new"
  dispatch
}

quota_drop() {  # P
  [ "$#" -eq 1 ] && project_ok "$1" || { log "usage: quota-drop PROJECT"; exit 2; }
  locked
  rm -f "$S/quota/$1"
  echo "@@dropped $1"
  dispatch
}

cmd=${1:-}
[ "$#" -gt 0 ] && shift
case $cmd in
  submit) locked; submit "$@"; dispatch;;
  dispatch) locked; dispatch;;
  tick) locked; foreign_scan; dispatch; prune; prune_usage;;  # the scan also when nothing waits: what
                                                  # `hostctl jobs` and status show stays fresh
  metrics) metrics "$@";;  # RUNDIR: parse RUNDIR/out/metrics.jsonl (hostctl's tests)
  admit) admit "$@";;
  finished) finished "$@";;
  cancel) cancel "$@";;
  lease-service) lease_service "$@";;
  release-service) release_service "$@";;
  quota-settle) quota_settle "$@";;
  quota-grant) quota_grant "$@";;
  quota-drop) quota_drop "$@";;
  usage) usage;;
  install-queue) locked; install_queue;;
  *) log "unknown command '$cmd'"; exit 2;;
esac
