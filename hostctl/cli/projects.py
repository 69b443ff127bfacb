"""`hostctl projects`: each project's quota against its use now, and its month's GPU-hours
against its budget.

Heavy imports stay inside the command, so `hostctl --help` stays fast.
"""

from __future__ import annotations

import json
import sys

import click

from hostctl.cli.options import inventory_option, json_option


@click.command("projects")
@inventory_option
@json_option
def projects_cmd(inventory: str, as_json: bool) -> None:
    """Each project: quota vs use now, runs running, queued and waiting, GPU-hours this month.

    Use counts the project's services (every instance the specs place) and its admitted
    runs (running, or queued for room on their host), on every host that runs jobs; a run
    WAITING is held for the project's quota. GPU-hours are this calendar month's (UTC), of
    runs and GPU services, priced at the inventory's `metrics: prices` when it has them. A
    `-` quota or budget is no limit. Exit status 1 when a host cannot be read.
    """
    # imported here: keeps `hostctl --help` and start-up fast
    from hostctl.cli.jobs import _connected, _err
    from hostctl.jobs import admission as A
    from hostctl.jobs import hostside as H
    from hostctl.jobs import ops
    from hostctl.jobs import plan as P
    from hostctl.jobs import projects_view as PV
    from hostctl.validate import load_site

    site = load_site(inventory)
    hosts = P.job_host_names(site)
    with _connected(site, [*hosts, *(h for h in A.usage_hosts(site) if h not in hosts)]) as conn:
        seen = ops.read_hosts(site, conn.runners, install=True, select=(H.ACTIVE,))
        usage = A.read_usage({h: r for h, r in conn.runners.items()
                              if not isinstance(seen.get(h), Exception)})
    errors = [ops.host_error(h, v) for h, v in {**usage, **seen}.items()
              if isinstance(v, Exception)]
    runs = [r for hj in seen.values() if not isinstance(hj, Exception) for r in hj.runs]
    settled = {h: v for h, v in usage.items() if not isinstance(v, Exception)}
    rows = PV.project_uses(site, runs, A.month_gpu_ms(site, settled),
                           A.month_gpu_model_ms(site, settled))
    if as_json:
        click.echo(json.dumps({"ok": not errors, "errors": errors,
                               "projects": [PV.as_json(p) for p in rows]}, indent=2))
    else:
        for text in errors:
            _err(f"error: {text}")
        for line in PV.lines(rows):
            click.echo(line)
    sys.exit(1 if errors else 0)


COMMANDS = (projects_cmd,)
