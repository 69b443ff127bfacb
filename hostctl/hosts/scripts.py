"""Shell scripts that change a host: apply a plan, check health, finish a run. Pure builders.

Scripts are sent on stdin to `sh -s` (not as an argument, which is capped at 128 KiB), and
report progress as `@@` marker lines that `parse_markers` reads. Every file lands by
temp-file-then-rename in its own directory, so a cut connection never leaves a half-written
unit or env file; secret files are created under umask 077 and are never readable by others
at any moment.
"""

from __future__ import annotations

import base64
import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hostctl.deploy.plan import HostPlan
from hostctl.hosts import layout as L
from hostctl.hosts.health_verdict import VERIFIED_SUFFIX

q = shlex.quote

PRELUDE = r"""umask 077
export LC_ALL=C
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
step() {
  n=$1; shift
  if ! "$@" >>"$LOG" 2>&1; then
    echo "@@failed $n"; tail -n 20 "$LOG"; exit 1
  fi
}
unit_step() {
  # systemctl's own "see systemctl status" says nothing of why: the failing units' last
  # lines (their processes' output, e.g. an ExecStartPre that could not lease its GPUs) do.
  n=$1; shift
  if ! systemctl "$n" -- "$@" >>"$LOG" 2>&1; then
    echo "@@failed $n"; tail -n 20 "$LOG"
    for u in "$@"; do
      systemctl is-active --quiet -- "$u" && continue
      echo "@@unit-log $u"
      # (a stop path's `docker rm -f` of a container that never started is noise here)
      journalctl --no-pager -o cat -n 20 _SYSTEMD_UNIT="$u" 2>/dev/null \
        | grep -v '^Error: No such container' | tail -n 3 | cut -c1-300
    done
    exit 1
  fi
}
put() {
  mkdir -p "$(dirname "$2")" && cp "$1" "$2.hostctl-new" && chmod "$3" "$2.hostctl-new" \
    && { [ -z "${4:-}" ] || chown "$4" "$2.hostctl-new"; } && mv -f "$2.hostctl-new" "$2"
}
""" + f"[ -d {L.LOCK_DIR} ] && echo $$ > {L.LOCK_DIR}/apply.pid\n"


def release_dir(release: str) -> str:
    return f"{L.RELEASES_DIR}/{release}"


def stage_release(release: str, contents: Mapping[str, tuple[bytes, int]],
                  removed: Sequence[str], manifest: Mapping[str, object]) -> str:
    """Build a new release directory: the live files, with the plan's writes and removals.

    The release is complete on its own (every managed file), so rolling back to it never
    depends on what else is on the host.
    """
    r = release_dir(release)
    globs = " ".join(L.MANAGED_GLOBS)
    lines = [
        f"R={q(r)}",
        'rm -rf "$R.partial" && mkdir -p "$R.partial/files"',
        f'for f in {globs}; do [ -f "$f" ] && mkdir -p "$R.partial/files$(dirname "$f")" '
        '&& cp -p "$f" "$R.partial/files$f"; done',
    ]
    for path, (data, mode) in sorted(contents.items()):
        staged = f'"$R.partial/files"{q(path)}'
        lines += [
            f'mkdir -p "$(dirname {staged})"',
            f"base64 -d > {staged} <<'HOSTCTL_EOF'",
            base64.encodebytes(data).decode().rstrip("\n"),
            "HOSTCTL_EOF",
            f"chmod {mode:04o} {staged}",
        ]
    for path in sorted(removed):
        lines.append(f'rm -f "$R.partial/files"{q(path)}')
    lines += [
        f"printf '%s\\n' {q(json.dumps(manifest, sort_keys=True))} > \"$R.partial/{L.MANIFEST}\"",
        'rm -rf "$R" && mv "$R.partial" "$R"',
        "echo '@@staged'",
    ]
    return "\n".join(lines) + "\n"


def activate(plan: HostPlan, release: str | None, docker: str,
             project_of: Mapping[str, str]) -> str:
    """Make the live files equal release `release` as the plan says, then act on units.

    `release` None means "no release": the state before hostctl managed anything (a
    rollback of a first deploy), which has no files to install.
    Order matters: stop what leaves before its unit file goes; install files, one
    daemon-reload; then enable, restart and start.
    """
    r = release_dir(release or "none")
    d = q(docker)
    stops = [u.unit for u in plan.units if u.action == "stop"]
    restarts = [u.unit for u in plan.units if u.action == "restart"]
    starts = [u.unit for u in plan.units if u.action == "start"]
    lines: list[str] = []
    if stops:
        lines.append(f"step stop systemctl stop -- {_words(stops)}")
        lines.append(f"systemctl disable -- {_words(stops)} >/dev/null 2>&1")
        lines.append(f"systemctl reset-failed -- {_words(stops)} >/dev/null 2>&1")
        for unit in stops:
            if unit.endswith(".service"):
                lines.append(f"{d} rm -f {q(unit[:-len('.service')])} >/dev/null 2>&1")
    for f in plan.files:
        if f.action == "write":
            owner = f" {q(f.owner)}" if f.owner else ""
            lines.append(f"step install put {q(r + '/files' + f.path)} {q(f.path)} "
                         f"{f.mode:04o}{owner}")
        else:
            lines.append(f"step remove rm -f {q(f.path)}")
    if plan.files:
        lines.append("step reload systemctl daemon-reload")
    if release is None:
        lines.append(f"rm -f {L.CURRENT_LINK}")
    else:
        lines.append(f"ln -sfn {q('releases/' + release)} {L.CURRENT_LINK}.new && "
                     f"mv -T {L.CURRENT_LINK}.new {L.CURRENT_LINK}")
    for net in plan.networks:
        project = project_of.get(net, "")
        lines.append(
            f"{d} network inspect {q(net)} >/dev/null 2>&1 || step network {d} network create "
            f"--label io.hostctl.managed=true --label {q('io.hostctl.project=' + project)} "
            f"{q(net)}")
    if plan.enable:
        lines.append(f"step enable systemctl enable -- {_words(plan.enable)}")
    if restarts:
        lines.append(f"unit_step restart {_words(restarts)}")
    if starts:
        lines.append(f"unit_step start {_words(starts)}")
    lines.append("echo '@@applied'")
    return "\n".join(lines) + "\n"


def _words(items: Sequence[str]) -> str:
    return " ".join(q(i) for i in items)


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


# A unit the health gate saw healthy: HEALTH_DIR/<unit>.verified holds when (epoch seconds).
# `hostctl status` and the exporter trust it for that run of the unit while Docker's own
# check (an image's HEALTHCHECK) has not said anything yet (hostctl.hosts.health_verdict).


def verified_path(unit: str) -> str:
    return f"{L.HEALTH_DIR}/{unit}{VERIFIED_SUFFIX}"


def health_script(probes: Sequence[HealthProbe], docker: str, log_lines: int = 20) -> str:
    """Poll every probe until each is healthy or has failed past its retries.

    A check counts as failed when the unit is not active, the container does not run, or
    the probe fails; failures inside start_period do not count (Docker's semantics). The
    loop is bounded by the largest budget. Prints `@@health UNIT ok|fail REASON`, and the
    unit's last journal lines for each failure. A unit found healthy is recorded on the host
    (verified_path), for `hostctl status`.
    """
    d = q(docker)
    lines = [
        "export LC_ALL=C",
        "start=$(date +%s)",
        f"mkdir -p {L.HEALTH_DIR} 2>/dev/null",
        *probe_functions(docker),
    ]
    budget = max((p.budget for p in probes), default=0)
    for i in range(len(probes)):
        lines += [f"s{i}=wait; f{i}=0; n{i}=0"]
    lines += ["while :; do", "  now=$(date +%s); el=$((now - start)); pending=0"]
    for i, p in enumerate(probes):
        c, u = q(p.container), q(p.unit)
        check = {
            "http": f'probe_http "$ip" {p.port} {p.timeout:g} {q(p.path)}',
            "tcp": f'probe_tcp "$ip" {p.port} {p.timeout:g}',
            "command": f"[ \"$({d} inspect -f '{{{{.State.Health.Status}}}}' {c} 2>/dev/null)\""
                       " = healthy ]",
            "running": "[ $el -ge 3 ]",
        }[p.kind]
        # Probed every pass, so a healthy service is seen at once; a failure counts at most
        # once per interval, as Docker counts them.
        lines += [
            f'  if [ "$s{i}" = wait ]; then',
            f"    ip=$(ip_of {c})",
            f"    if systemctl is-active --quiet {u} && "
            f"[ \"$({d} inspect -f '{{{{.State.Running}}}}' {c} 2>/dev/null)\" = true ] && "
            f"[ -n \"$ip\" ] && {check}; then",
            f"      s{i}=ok; echo \"@@health {p.unit} ok $el\"",
            f"      {{ echo \"$now\" > {q(verified_path(p.unit))}; }} 2>/dev/null",
            f"    elif [ $el -ge {int(p.start_period)} ] && [ $now -ge \"$n{i}\" ]; then",
            f"      n{i}=$((now + {max(1, int(p.interval))}))",
            f"      f{i}=$((f{i} + 1))",
            f"      if [ $f{i} -ge {p.retries} ] || [ $el -ge {int(p.budget)} ]; then",
            f"        s{i}=fail; echo \"@@health {p.unit} fail $(systemctl is-active {u})\"",
            f"        journalctl -u {u} -n {log_lines} --no-pager -o cat 2>/dev/null "
            "| sed 's/^/@@log /'",
            "      fi",
            "    fi",
            "  fi",
            f'  [ "$s{i}" = wait ] && pending=1',
        ]
    lines += [
        "  [ $pending = 0 ] && break",
        f"  [ $el -ge {int(budget) + 5} ] && break",
        "  sleep 0.5",
        "done",
        "echo '@@done'",
    ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class HealthResult:
    unit: str
    ok: bool
    detail: str
    log: tuple[str, ...] = ()


def parse_health(text: str, units: Sequence[str]) -> list[HealthResult]:
    """Per unit: healthy or not, and the last log lines of the ones that failed."""
    verdicts: dict[str, HealthResult] = {}
    logs: dict[str, list[str]] = {}
    last = ""
    for line in text.splitlines():
        if line.startswith("@@health "):
            _, unit, verdict, *rest = line.split(" ")
            verdicts[unit] = HealthResult(unit, verdict == "ok", " ".join(rest))
            last = unit
        elif line.startswith("@@log "):
            logs.setdefault(last, []).append(line[len("@@log "):])
    out = []
    for unit in units:
        v = verdicts.get(unit, HealthResult(unit, False, "no verdict before the time ran out"))
        out.append(HealthResult(v.unit, v.ok, v.detail, tuple(logs.get(unit, ()))))
    return out


def finish_script(lock_record: str | None, audit_record: Mapping[str, object],
                  keep: int = L.KEEP_RELEASES, protect: Sequence[str] = ()) -> str:
    """Append the audit record, prune old releases, and release our lock (only ours)."""
    lines = [
        f"mkdir -p {L.STATE_DIR}",
        f"printf '%s\\n' {q(json.dumps(audit_record, sort_keys=True))} >> {L.AUDIT_LOG}",
    ]
    keep_list = " ".join(q(p) for p in protect)
    lines += [
        f"cur=$(readlink {L.CURRENT_LINK} 2>/dev/null | sed 's|.*/||')",
        f"ls -1 {L.RELEASES_DIR} 2>/dev/null | grep -v '\\.partial$' | sort | head -n -{keep} | "
        "while read -r r; do",
        f'  case " $cur {keep_list} " in *" $r "*) continue;; esac',
        f'  rm -rf {L.RELEASES_DIR}/"$r"',
        "done",
    ]
    if lock_record is not None:
        lines += [
            f"if [ \"$(cat {L.LOCK_DIR}/holder.json 2>/dev/null)\" = {q(lock_record)} ]; then",
            # A script of this run cut off from us (connection lost) may still be changing
            # the host: the lock stays until it ends (30 s at most, then it is kept).
            f"  p=$(cat {L.LOCK_DIR}/apply.pid 2>/dev/null); i=0",
            '  while [ -n "$p" ] && kill -0 "$p" 2>/dev/null && [ $i -lt 300 ]; do',
            "    sleep 0.1; i=$((i + 1))",
            "  done",
            '  if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then echo \'@@lock kept\'; '
            f"else rm -rf {L.LOCK_DIR}; fi",
            "fi",
        ]
    lines.append("echo '@@finished'")
    return "\n".join(lines) + "\n"


def break_lock_script(expected_raw: str, lock_record: str) -> str:
    """Break a stale lock, but only the one we saw: a lock taken since then is left alone."""
    return (
        f"if [ \"$(head -c 4096 {L.LOCK_DIR}/holder.json 2>/dev/null | tr -d '\\n')\" = "
        f"{q(expected_raw)} ]; then rm -rf {L.LOCK_DIR}; fi\n"
        f"if mkdir {L.LOCK_DIR} 2>/dev/null; then\n"
        f"  printf '%s\\n' {q(lock_record)} > {L.LOCK_DIR}/holder.json; echo '@@lock acquired'\n"
        "else echo '@@lock held'; fi\n"
    )


def markers(text: str) -> dict[str, list[str]]:
    """`@@name rest` lines by name (plain output lines are kept under the last marker)."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.startswith("@@"):
            name, _, rest = line[2:].partition(" ")
            out.setdefault(name, []).append(rest)
    return out


def releases_script() -> str:
    """Every release on the host with its manifest, and which one is current."""
    return (
        f"echo \"@@current $(readlink {L.CURRENT_LINK} 2>/dev/null | sed 's|.*/||')\"\n"
        f"for r in $(ls -1 {L.RELEASES_DIR} 2>/dev/null | grep -v '\\.partial$'); do\n"
        f"  printf '@@release %s ' \"$r\"; tr -d '\\n' < {L.RELEASES_DIR}/\"$r\"/{L.MANIFEST}"
        " 2>/dev/null; echo\n"
        f"  [ -f {L.RELEASES_DIR}/\"$r\"/status ] && "
        f"printf '@@status %s %s\\n' \"$r\" \"$(cat {L.RELEASES_DIR}/\"$r\"/status)\"\n"
        "done\n"
    )


def parse_releases(text: str) -> tuple[str | None, dict[str, dict[str, object]]]:
    """(current release, {release: manifest}) from `releases_script` output."""
    current = None
    out: dict[str, dict[str, object]] = {}
    for line in text.splitlines():
        if line.startswith("@@current "):
            current = line.split(" ", 1)[1].strip() or None
        elif line.startswith("@@release "):
            _, name, *rest = line.split(" ", 2)
            try:
                manifest = json.loads(rest[0]) if rest and rest[0].strip() else {}
            except ValueError:
                manifest = {}
            out[name] = manifest if isinstance(manifest, dict) else {}
        elif line.startswith("@@status "):
            _, name, *rest = line.split(" ", 2)
            if name in out:
                out[name]["status"] = rest[0].strip() if rest else ""
    return current, out


def mark_rolled_back(release: str) -> str:
    """Remember that a release failed and was left, so no rollback ever returns to it."""
    return f"echo rolled-back > {q(release_dir(release) + '/status')}\n"
