"""The deploy's health gate: one script polls every changed unit's probe on the host until
each is healthy or has failed past its retries, its output's parser, and check_health that
sends it. The builders are pure; the probes and the shell functions they share with the
host's own probe are render.probe's."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from hostctl import layout as L
from hostctl.hosts.health_verdict import VERIFIED_SUFFIX
from hostctl.hosts.progress import Progress
from hostctl.hosts.scripts import q
from hostctl.render.probe import HealthProbe, probe_functions
from hostctl.runner.base import CommandTimeout, Runner
from hostctl.spec import model as m

# A unit the health gate saw healthy: HEALTH_DIR/<unit>.verified holds when (epoch seconds).
# `hostctl status` and the exporter trust it for that run of the unit while Docker's own
# check (an image's HEALTHCHECK) has not said anything yet (hostctl.hosts.health_verdict).


def verified_path(unit: str) -> str:
    return f"{L.HEALTH_DIR}/{unit}{VERIFIED_SUFFIX}"


# One line per container the gate still waits for: name, running, Docker's health, the
# first network address. One `docker inspect` for all of them per pass: Docker answers for
# a container that is starting once its start is done, so the pass checks it right after
# it started (and one that does not exist yet is simply left out of the answer).
GATE_INSPECT = ("{{.Name}} {{.State.Running}} "
                "{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}} "
                "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}")
PASS_PAUSE = 0.5  # seconds between two passes of the gate over its pending units
# Seconds the gate's connection waits beyond the longest budget: the script's own bound (5),
# then at most one check's timeout and a slow docker or systemctl answer before it sees it.
GATE_MARGIN = 30


def gate_deadline(probes: Sequence[HealthProbe]) -> float:
    """Seconds the deploy waits for the health gate on one host: derived from what it waits
    for (the longest start period + (interval + timeout) x (retries + 1) of its units),
    plus GATE_MARGIN. Past it, the host is rolled back like any failed gate."""
    return max((p.budget for p in probes), default=0) + GATE_MARGIN


def _check(p: HealthProbe, i: int, docker: str) -> str:
    """The shell test that one unit's service answers (its container runs, with address
    $ip<i> and Docker's health $h<i>)."""
    if p.kind == "http":
        return f'probe_http "$ip{i}" {p.port} {p.timeout:g} {q(p.path)}'
    if p.kind == "tcp":
        return f'probe_tcp "$ip{i}" {p.port} {p.timeout:g}'
    if p.kind == "command":
        # Docker's verdict, or the same command run now: Docker's own first check comes
        # only after its interval (--health-start-interval needs Docker 25).
        own = (f" || timeout {max(1, math.ceil(p.timeout))} {q(docker)} exec {q(p.container)}"
               f" /bin/sh -c {q(p.command)} >/dev/null 2>&1" if p.command else "")
        return f'{{ [ "$h{i}" = healthy ]{own}; }}'
    return "[ $el -ge 3 ]"


def health_script(probes: Sequence[HealthProbe], docker: str, log_lines: int = 20) -> str:
    """Poll every probe until each is healthy or has failed past its retries.

    The gate keeps its own short cadence: every PASS_PAUSE seconds it checks each unit it
    still waits for, so a unit is seen healthy as soon as it answers. A check counts as
    failed when the unit is not active, the container does not run, or the probe fails;
    failures inside start_period do not count (Docker's semantics), and a failure counts
    at most once per interval, as Docker counts them. A pass asks systemd and Docker once
    for all its units (systemctl is-active, docker inspect), not once per unit. The loop is
    bounded by the largest budget, between units too. Prints
    `@@health UNIT ok|fail REASON`, and the unit's last journal lines for each failure. A
    unit found healthy is recorded on the host (verified_path), for `hostctl status`.
    """
    d = q(docker)
    budget = max((p.budget for p in probes), default=0)
    bound = int(budget) + 5
    lines = [
        "export LC_ALL=C",
        "start=$(date +%s)",
        f"mkdir -p {L.HEALTH_DIR} 2>/dev/null",
        *probe_functions(docker),
    ]
    for i in range(len(probes)):
        lines += [f"s{i}=wait; f{i}=0; n{i}=0"]
    units = " ".join(q(p.unit) for p in probes)
    lines += [
        "while :; do",
        "  now=$(date +%s); el=$((now - start)); pending=0",
        f"  set -- $(systemctl is-active -- {units} 2>/dev/null)",
        *(f"  a{i}=${{{i + 1}:-}}; r{i}=; h{i}=; ip{i}=" for i in range(len(probes))),
        "  ask=",
        *(f'  [ "$s{i}" = wait ] && ask="$ask {q(p.container)}"'
          for i, p in enumerate(probes)),
        '  if [ -n "$ask" ]; then',
        "    while read -r cn cr ch cip _; do",
        '      case "$cn" in',
        *(f'        /{q(p.container)}) r{i}=$cr; h{i}=$ch; ip{i}=$cip;;'
          for i, p in enumerate(probes)),
        "      esac",
        "    done <<HOSTCTL_EOF",
        f"$({d} inspect -f {q(GATE_INSPECT)} $ask 2>/dev/null)",
        "HOSTCTL_EOF",
        "  fi",
    ]
    for i, p in enumerate(probes):
        u = q(p.unit)
        lines += [
            f'  if [ "$s{i}" = wait ]; then',
            "    ok=",
            f'    if [ "$a{i}" = active ] && [ "$r{i}" = true ] && [ -n "$ip{i}" ]; then',
            # The clock again only before a check that runs (a probe may wait its timeout):
            # a unit whose container is not up yet costs no process.
            f"      [ $(($(date +%s) - start)) -ge {bound} ] && break",
            f"      {_check(p, i, docker)} && ok=1",
            "    fi",
            '    if [ -n "$ok" ]; then',
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
        f"  [ $el -ge {bound} ] && break",
        f"  sleep {PASS_PAUSE:g}",
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
    """Wait for each probe to pass or run out of retries, in one round trip. A host that
    has not answered by gate_deadline (a slow host) counts as a failed gate: no verdict
    for any unit (the runner has stopped the script on the host)."""
    if not probes:
        return []
    progress(runner.host, "health", f"{len(probes)} unit(s)")
    try:
        res = runner.run(["sh", "-s"], stdin=health_script(probes, host.docker).encode(),
                         timeout=gate_deadline(probes))
    except CommandTimeout:
        return parse_health("", [p.unit for p in probes])
    return parse_health(res.stdout, [p.unit for p in probes])
