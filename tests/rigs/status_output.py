"""What `hostctl status` sees on a host, shared by the status and handoff-record tests: a
small site's specs (SPECS), the clock (NOW), and the status script's output on app-1 as
captured from a sandbox host (app1_output)."""

from __future__ import annotations

from hostctl.spec.hashing import spec_hash
from hostctl.spec.model import Site

SPECS = {
    "api.yml": """\
        kind: service
        name: api
        project: shop
        image: example.org/shop/api:1.0
        instances: 2
        secrets: [DB_PASSWORD]
        ports:
          http: {container: 8080, host: 18080}
        health:
          command: [wget, -q, -O-, http://127.0.0.1:8080/health]
        placement: {hosts: [app-1]}
        """,
    "jobs.yml": """\
        kind: job
        name: nightly
        project: shop
        image: example.org/shop/api:1.0
        schedule: "*-*-* 02:00:00"
        placement: {labels: {role: app}}
        """,
    "worker.yml": """\
        kind: service
        name: worker
        project: shop
        image: example.org/shop/worker:1.0
        placement: {hosts: [app-1]}
        """,
}

NOW = 1715684400  # 2024-05-14 11:00:00 UTC


def hashes(site: Site) -> dict[str, str]:
    return {w.name: spec_hash(w) for w in site.workloads}


def unit_block(unit: str, active: str, sub: str, since: str = "Tue 2024-05-14 10:00:00 UTC",
               result: str = "success", restarts: str | None = "0") -> str:
    lines = [f"Id={unit}", "LoadState=loaded", f"ActiveState={active}", f"SubState={sub}",
             f"Result={result}"]
    if restarts is not None:  # timers have no NRestarts
        lines.append(f"NRestarts={restarts}")
    lines += [f"ActiveEnterTimestamp={since}", f"StateChangeTimestamp={since}"]
    return "\n".join(lines)


def container(name: str, image: str, state: str, status: str, digest: str, workload: str,
              instance: str = "", kind: str = "service", run: str = "") -> str:
    return "\t".join([name, image, state, status, digest, workload, "shop", instance, kind, run])


def app1_output(h: dict[str, str], api1_hash: str | None = None) -> str:
    """What status_script printed on app-1 (shape as captured from a sandbox host): api #1
    healthy, api #2 crash-looping, worker never deployed, a job run in progress, a unit the
    specs dropped, and a container started by hand."""
    units = "\n\n".join([
        unit_block("hostctl-api-1.service", "active", "running"),
        unit_block("hostctl-api-2.service", "activating", "auto-restart",
                   since="Tue 2024-05-14 10:59:55 UTC", result="exit-code", restarts="3"),
        unit_block("hostctl-job-nightly.timer", "active", "waiting", restarts=None),
        unit_block("hostctl-job-nightly@scheduled.service", "active", "running",
                   since="Tue 2024-05-14 10:58:00 UTC"),
        unit_block("hostctl-old-1.service", "active", "running",
                   since="Sat 2024-05-11 09:00:00 UTC"),
        unit_block("hostctl-probe.timer", "active", "waiting", restarts=None),
        unit_block("hostctl-probe@tick.service", "inactive", "dead"),
    ])
    containers = "\n".join([
        container("hostctl-api-1", "example.org/shop/api:1.0", "running", "Up 1 hour (healthy)",
                  api1_hash or h["api"], "api", "1"),
        container("hostctl-job-nightly-scheduled", "example.org/shop/api:1.0", "running",
                  "Up 2 minutes", h["nightly"], "nightly", kind="job", run="scheduled"),
        container("hostctl-old-1", "example.org/shop/old:3", "running", "Up 3 days",
                  "0123456789ab", "old", "1"),
        container("hostctl-stray-1", "example.org/shop/stray:1", "exited",
                  "Exited (0) 5 minutes ago", "abcdefabcdef", "stray", "1"),
    ])
    return f"""\
@@hostctl-status 1
@@now {NOW}
@@release 20240514T100000Z-ab12cd
@@unitfiles
hostctl-api-1.service {h["api"]}
hostctl-api-2.service {h["api"]}
hostctl-job-nightly.timer {""}
hostctl-job-nightly@.service {h["nightly"]}
hostctl-old-1.service 0123456789ab
hostctl-probe.timer {""}
@@units
{units}
@@docker
ok 24.0.7
@@containers
{containers}
@@end
"""
