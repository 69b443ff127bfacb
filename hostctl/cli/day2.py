"""`hostctl status`, `logs`, `exec`, `start`, `stop` and `restart`. Heavy imports stay inside
commands, so `hostctl --help` stays fast."""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, suppress
from typing import Any

import click

from hostctl.cli.connecting import connect_early
from hostctl.cli.options import hosts_option, inventory_option, json_option
from hostctl.errors import HostctlError
from hostctl.spec.placement import eligible_hosts

INSTANCE_HELP = "Only this instance (1, 2, ...)."
HOST_HELP = "Only the instance(s) on this host."

# What a run id looks like (`hostctl logs RUN_ID`): 8 hex digits (hostctl.jobs.plan.new_group),
# then -SHARD and -rRETRY; anything else is a service name.
_RUN_ID = re.compile(r"[0-9a-f]{8}(-[a-z0-9-]+)?")


def _seconds(value: str, option: str) -> float:
    # imported here: keeps hostctl --help and start-up fast
    from hostctl.spec.schema import parse_duration

    seconds = parse_duration(value)
    if seconds is None:
        raise click.BadParameter(f"'{value}' is not a duration such as 30s or 5m",
                                 param_hint=option)
    return seconds


def _connected(site: Any, hosts: Iterable[str]) -> AbstractContextManager[Any]:
    """hosts.session: the same runners (and connect errors) as deploy, one per host. The
    handshakes start now (cli.connecting): a command that has more to import or work out
    before it enters the block does so meanwhile."""
    # imported here: keeps hostctl --help and start-up fast (it brings the SSH runner)
    from hostctl.hosts.session import session

    hosts = list(hosts)
    connect_early(site, hosts)
    return session(site, hosts)


# Seconds between the two readings of Logstash's counters (only taken when they matter)
SECOND_READING_AFTER = 3


def _stderr(text: str) -> None:
    click.secho(text, err=True, fg="red")


def _log_shipping(site: Any, runners: Any, results: Any) -> Any:
    """Whether logs reach Elasticsearch: each container's log driver and Logstash's counters,
    as the status script read them; when those counters show failed or rejected events,
    a second reading a few seconds later tells a failing output from old news."""
    # imported here: keeps hostctl --help and start-up fast
    from hostctl.observability.shipping import (
        LOGSTASH_CONTAINER,
        parse_stats,
        second_reading_needed,
        shipping_state,
        stats_argv,
    )
    from hostctl.ops.status import HostStatus
    from hostctl.runner import RunnerError

    log = site.inventory.logging
    if log is None:
        return shipping_state(None, {}, False, None)
    statuses = {n: s for n, s in results.items() if isinstance(s, HostStatus)}
    drivers = {n: s.log_drivers for n, s in statuses.items()}
    if log.host not in statuses:  # not among --hosts, unreachable, or its status unreadable
        return shipping_state(log, drivers, False, None)
    unit = statuses[log.host].units.get(f"{LOGSTASH_CONTAINER}.service")
    running = unit is not None and unit.active == "active"
    first = statuses[log.host].logstash
    if not (running and second_reading_needed(first)):
        return shipping_state(log, drivers, running, first)
    time.sleep(SECOND_READING_AFTER)
    try:
        res = runners[log.host].run(stats_argv(site.inventory.hosts[log.host].docker),
                                    timeout=30)
        second = parse_stats(res.stdout) if res.rc == 0 else None
    except RunnerError:  # the host's status is shown all the same; Logstash did not answer
        second = None
    return shipping_state(log, drivers, running, second, first)


@click.command()
@inventory_option
@hosts_option
@json_option
def status(inventory: str, hosts: tuple[str, ...], as_json: bool) -> None:
    """Show what runs on every host, and where it drifts from the specs.

    For each service instance (and job timer): its unit state, health, image, spec hash and
    since when (UTC); and each host's current release. Health is Docker's verdict, or while
    Docker has none (no check, or still starting) hostctl's own check of that run of the
    unit: the health probe's, or the deploy's health gate's, whichever came last. A service
    handed to the k3s cluster (`hostctl k8s handoff`) shows "in cluster" since its handoff,
    not down.

    Drift is marked with `*` and explained under the table: a spec hash that differs from
    the specs, a unit the specs want but the host lacks, a unit or container the specs do
    not know. With a logging section, whether logs are shipped: each container's log
    driver and Logstash's counters (when these show failed or rejected events, read again
    3 s later: going on, or old news). One round trip per host (and that second reading);
    env files (secrets) are never read. Exit status 1 when a host cannot be read (the others
    are still shown); drift alone exits 0 (see "drift" in --json).
    """
    # imported here: keeps hostctl --help and start-up fast
    from hostctl.spec.schema import did_you_mean
    from hostctl.validate import load_site

    site = load_site(inventory)
    inv = site.inventory
    wanted = list(hosts) or list(inv.hosts)
    for h in wanted:
        if h not in inv.hosts:
            raise HostctlError(f"--hosts: no host '{h}' in {inv.file}{did_you_mean(h, inv.hosts)}")
    hosts_connected = _connected(site, wanted)
    # imported here, while the hosts are being connected: keeps start-up fast
    from hostctl.ops import status as st

    with hosts_connected as run:
        results = st.read_statuses(site, run.runners)
        shipping = _log_shipping(site, run.runners, results)
    reports = st.build_reports(site, results)
    if as_json:
        click.echo(json.dumps({**st.report_json(reports), "logs": {
            "state": shipping.state, "detail": shipping.detail}}, indent=2))
    else:
        for line in st.report_lines(reports):
            click.echo(line)
        if site.inventory.logging is not None:  # without one, journald: nothing to say
            click.echo(f"logs: {shipping}")
    sys.exit(st.exit_code(reports))


@click.command()
@inventory_option
@click.argument("service")
@click.option("--host", "host", metavar="H", help=HOST_HELP)
@click.option("--instance", type=click.IntRange(min=1), metavar="N", help=INSTANCE_HELP)
@click.option("-f", "--follow", is_flag=True,
              help="Keep printing new lines (polling every second) until Ctrl-C.")
@click.option("-n", "--lines", default=100, show_default=True, type=click.IntRange(min=0),
              metavar="N", help="Lines to show first, from each host.")
def logs(inventory: str, service: str, host: str | None, instance: int | None, follow: bool,
         lines: int) -> None:
    """Show the journal of SERVICE's units on the hosts it runs on.

    That is its containers' output and systemd's messages about its units, oldest first,
    times in UTC. Lines are prefixed with host/instance when more than one instance is
    shown. A job's name shows the output of its runs. Exit status 1 when a host cannot be
    read.
    """
    # imported here: keeps hostctl --help and start-up fast
    from hostctl.ops import day2
    from hostctl.validate import load_site

    site = load_site(inventory)
    if service not in {w.name for w in site.workloads} and _RUN_ID.fullmatch(service):
        # A run id (`hostctl logs RUN_ID`): its host has its record, which names its unit.
        # imported here: keeps hostctl --help and start-up fast
        from hostctl.jobs import ops

        with _connected(site, [h.name for w in site.jobs
                               for h in eligible_hosts(w, site.inventory)]) as run:
            rec, _ = ops.find_run(site, run.runners, service)
        targets = [day2.LogTarget(rec.host, (f"hostctl-job-{rec.job}@{rec.id}.service",))]
    else:
        targets = day2.log_targets(site, service, host, instance)
    with _connected(site, [t.host for t in targets]) as run:
        reader = day2.LogReader(run.runners, targets)
        entries, errors = reader.first(lines, follow)
        for err in errors:
            _stderr(f"error: {err}")
        for e in entries:
            click.echo(day2.format_entry(e, reader.prefixed))
        if follow and reader.live:
            # Ctrl-C is how following ends; the runners close on the way out.
            with suppress(KeyboardInterrupt):
                day2.follow(reader, click.echo, lambda text: _stderr(f"error: {text}"))
    sys.exit(1 if any(n >= day2.FOLLOW_MAX_ERRORS for n in reader.failures.values()) else 0)


@click.command("exec", context_settings={"ignore_unknown_options": True})
@inventory_option
@click.argument("service")
@click.option("--host", "host", metavar="H", help=HOST_HELP)
@click.option("--instance", type=click.IntRange(min=1), metavar="N", help=INSTANCE_HELP)
@click.option("--timeout", "timeout", default="10m", show_default=True, metavar="DURATION",
              help="Stop waiting for the command after this long.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_(inventory: str, service: str, host: str | None, instance: int | None, timeout: str,
          command: tuple[str, ...]) -> None:
    """Run a command in one instance of SERVICE: `hostctl exec SERVICE -- CMD ARGS...`.

    `docker exec` without a terminal or stdin; its output is printed when it ends, and
    hostctl exits with its exit status. With several instances, choose one with --host
    and/or --instance.
    """
    # imported here: keeps hostctl --help and start-up fast
    from hostctl.ops import day2
    from hostctl.validate import load_site

    limit = _seconds(timeout, "--timeout")
    site = load_site(inventory)
    inst = day2.choose_one(day2.select_instances(site, service, host, instance), service)
    with _connected(site, [inst.host.name]) as run:
        runner = run.runners[inst.host.name]
        if isinstance(runner, Exception):
            raise runner
        res, hint = day2.exec_in(runner, inst, command, limit)
    if res.stdout:
        click.echo(res.stdout, nl=False)
    if res.stderr:
        click.echo(res.stderr, nl=False, err=True)
    if hint:
        _stderr(f"hostctl: {hint}")
    sys.exit(res.rc)


_ACTION_DONE = {"start": "started", "stop": "stopped", "restart": "restarted"}
_ACTION_HELP = {
    "start": "Start SERVICE's units (where they are not running) and wait until each stays "
             "active. A service handed to the cluster is refused (`hostctl k8s handoff "
             "--back` brings it back).",
    "stop": "Stop SERVICE's units. They stay enabled: a reboot or the next `hostctl deploy` "
            "starts them again.",
    "restart": "Restart SERVICE's units (all at once on each host) and wait until each "
               "stays active. A service handed to the cluster is refused.",
}


def _action_command(action: str) -> Callable[..., None]:
    def command(inventory: str, service: str, host: str | None, instance: int | None,
                as_json: bool, wait: str = "0s") -> None:
        # imported here: keeps hostctl --help and start-up fast
        from hostctl.ops import day2
        from hostctl.validate import load_site

        limit = max(_seconds(wait, "--wait"), day2.STABLE_SECONDS + 1)
        site = load_site(inventory)
        instances = day2.select_instances(site, service, host, instance)
        hosts = list(dict.fromkeys(i.host.name for i in instances))
        if not as_json:
            click.echo(f"{action} {service}: {len(instances)} unit(s) on {', '.join(hosts)}",
                       err=True)
        with _connected(site, hosts) as run:
            outcomes = day2.unit_action(run.runners, action, instances, wait=limit,
                                        audit=run.audit_base(), lock_record=run.lock_record,
                                        refuse_in_cluster=service if action != "stop"
                                        else None)
        ok = all(o.ok for o in outcomes.values())
        if as_json:
            click.echo(json.dumps(day2.action_json(outcomes), indent=2))
        else:
            for line in day2.action_lines(outcomes):
                click.echo(line)
            good = sum(u.ok for o in outcomes.values() for u in o.units)
            click.echo(f"{service}: {_ACTION_DONE[action]} {good}/{len(instances)} unit(s)"
                       + ("" if ok else "; see above"))
        sys.exit(0 if ok else 1)

    command.__name__ = action
    command.__doc__ = _ACTION_HELP[action] + (
        " Each unit's resulting state is reported, with its last journal lines when it "
        "did not end as asked; the action is recorded in the host's audit log. A host "
        "that a deploy has locked is left alone and reported (the action holds the same "
        "lock while it acts and waits, so no deploy starts meanwhile). Exit "
        "status 1 when a unit did not end as asked or a host could not be reached.")
    f: Any = json_option(command)
    if action != "stop":
        f = click.option("--wait", "wait", default="60s", show_default=True,
                         metavar="DURATION",
                         help="How long to wait for the units to stay active.")(f)
    f = click.option("--instance", type=click.IntRange(min=1), metavar="N",
                     help=INSTANCE_HELP)(f)
    f = click.option("--host", "host", metavar="H", help=HOST_HELP)(f)
    f = click.argument("service")(f)
    f = inventory_option(f)
    return click.command(action)(f)


start = _action_command("start")
stop = _action_command("stop")
restart = _action_command("restart")


COMMANDS = (status, logs, exec_, start, stop, restart)
