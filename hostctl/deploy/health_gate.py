"""The deploy's health gate: one script polls every changed unit's probe on the host until
each is healthy or has failed past its retries, its output's parser, and check_health that
sends it. The builders are pure; the probes and the shell functions they share with the
host's own probe are render.probe's."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hostctl import layout as L
from hostctl.hosts.health_verdict import VERIFIED_SUFFIX
from hostctl.hosts.progress import Progress
from hostctl.hosts.scripts import q
from hostctl.render.probe import HealthProbe, probe_functions
from hostctl.runner.base import Runner
from hostctl.spec import model as m

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


def check_health(runner: Runner, host: m.Host, probes: Sequence[HealthProbe],
                 progress: Progress) -> list[HealthResult]:
    """Wait for each probe to pass or run out of retries, in one round trip."""
    if not probes:
        return []
    progress(runner.host, "health", f"{len(probes)} unit(s)")
    budget = max(p.budget for p in probes) + 30
    res = runner.run(["sh", "-s"], stdin=health_script(probes, host.docker).encode(),
                     timeout=budget)
    return parse_health(res.stdout, [p.unit for p in probes])
