"""Services handed to the k3s cluster (`hostctl k8s handoff`), as the hosts record them.

The handoff writes a one-line JSON record (who, when, run, cluster context, gateway
target) to `layout.CLUSTER_DIR/<service>` on every host that ran the service and on the
gateway hosts (so a deploy of the gateway hosts alone still knows); `--back` removes it.
Deploy reads the records with its facts, in the same round trip, and then:
- leaves the service's units stopped and disabled (files may still be updated);
- says so in the plan;
- keeps the gateway routing the service to the cluster.
`hostctl status` reads them too and shows the service as "in cluster", not down.

Pure but for `read_records`, which asks hosts through their runners; what deploy does with
the records is deploy.handoff's.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hostctl import layout as L
from hostctl.errors import HostctlError
from hostctl.hosts.facts import parse_handed_off as parse_records
from hostctl.layout import MARK
from hostctl.runner.pool import run_parallel

if TYPE_CHECKING:
    from hostctl.hosts.facts import HostFacts
    from hostctl.runner.base import Runner, RunnerError
    from hostctl.spec import model as m

__all__ = ["parse_records"]

# -- the record and the scripts that keep it -------------------------------------------------

def record_line(who: str, run: str, context: str, target: str | None,
                now: float | None = None) -> str:
    """The record's one line; never a secret (the context is a kubeconfig context name)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if now is None
                                                             else now))
    record: dict[str, Any] = {"who": who, "time": stamp, "run": run, "context": context}
    if target:
        record["target"] = target
    return json.dumps(record, sort_keys=True)


def record_path(service: str) -> str:
    return f"{L.CLUSTER_DIR}/{service}"


def write_record_script(service: str, line: str) -> str:
    """Write the record atomically (temp file + rename: a reader never sees half of it)."""
    path = shlex.quote(record_path(service))
    return "\n".join([
        "set -e",
        f"mkdir -p {L.CLUSTER_DIR}",
        f"printf '%s\\n' {shlex.quote(line)} > {path}.tmp",
        f"mv -f {path}.tmp {path}",
        f"echo '{MARK}recorded'",
    ]) + "\n"


def remove_record_script(service: str) -> str:
    path = shlex.quote(record_path(service))
    return f"set -e\nrm -f {path} {path}.tmp\necho '{MARK}removed'\n"


def records_script() -> str:
    """Every record on a host, as `SERVICE JSON` lines (what the facts script prints)."""
    return (f"echo '{MARK}cluster'\nfor f in {L.CLUSTER_DIR}/*; do [ -f \"$f\" ] && "
            "printf '%s %s\\n' \"${f##*/}\" \"$(head -c 4096 \"$f\" | tr -d '\\n')\"; "
            "done; true\n")


def parse_records_output(text: str) -> dict[str, dict[str, Any]]:
    lines = text.splitlines()
    start = lines.index(f"{MARK}cluster") + 1 if f"{MARK}cluster" in lines else len(lines)
    return parse_records(lines[start:])


def read_records(runners: Mapping[str, Runner | RunnerError]
                 ) -> dict[str, dict[str, dict[str, Any]]]:
    """host -> its records, one round trip per host; a host that cannot say is an error
    (guessing "none" would route a service in the cluster back to stopped hosts)."""
    def one(runner: Runner) -> dict[str, dict[str, Any]]:
        res = runner.run(["sh", "-s"], stdin=records_script().encode(), timeout=60)
        if not res.ok or f"{MARK}cluster" not in res.stdout.splitlines():
            raise HostctlError(f"{runner.host}: could not read the handoff records in "
                               f"{L.CLUSTER_DIR}: {(res.stderr or res.stdout).strip()}")
        return parse_records_output(res.stdout)

    out: dict[str, dict[str, dict[str, Any]]] = {}
    errors = []
    for host, result in run_parallel(runners, one).items():
        if isinstance(result, Exception):
            errors.append(str(result) if str(result).startswith(host) else f"{host}: {result}")
        else:
            out[host] = result
    if errors:
        raise HostctlError("; ".join(errors))
    return out


# -- what the hosts say -----------------------------------------------------------------------

def handed_off(records: Mapping[str, Mapping[str, dict[str, Any]]]
               ) -> dict[str, dict[str, Any]]:
    """host -> service -> record, merged to service -> record (the earliest, with `hosts`)."""
    out: dict[str, dict[str, Any]] = {}
    for host in sorted(records):
        for service, record in records[host].items():
            seen = out.get(service)
            if seen is None or str(record.get("time", "")) < str(seen.get("time", "~")):
                out[service] = {**record, "hosts": [*(seen or {}).get("hosts", []), host]}
            else:
                seen["hosts"].append(host)
    return out


def from_facts(facts: Mapping[str, HostFacts]) -> dict[str, dict[str, Any]]:
    return handed_off({name: f.handed_off for name, f in facts.items()})


def cluster_targets(site: m.Site, handed: Mapping[str, Mapping[str, Any]]
                    ) -> dict[str, str]:
    """Routed services in the cluster -> where the gateway reaches the cluster's ingress:
    k3s/gateway_target now, else the target the handoff recorded (the section was edited)."""
    cfg = site.inventory.k3s
    out = {}
    for w in site.services:
        record = handed.get(w.name)
        if w.route is None or record is None:
            continue
        target = cfg.gateway_target or record.get("target")
        if isinstance(target, str) and target:
            out[w.name] = target
    return out


# -- the note deploy and plan show ----------------------------------------------------------

def note(service: str, record: Mapping[str, Any]) -> str:
    since = record.get("time") or "an unknown time (unreadable record)"
    by = f" (handed off by {record['who']})" if record.get("who") else ""
    return (f"{service} lives in the cluster since {since}{by}: its units stay stopped; "
            f"`hostctl k8s handoff --back {service}` to bring it back")
