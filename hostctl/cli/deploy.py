"""`hostctl plan`, `deploy`, `rollback` and `releases`. Heavy imports stay inside commands."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from hostctl.cli.connecting import connect_early
from hostctl.cli.options import hosts_option, inventory_option, json_option, names_option
from hostctl.errors import HostctlError

PLAN_EXIT_HELP = "Exit status: 0 no changes, 1 changes, 2 errors."


def _names(value: tuple[str, ...]) -> frozenset[str] | None:
    """A list option's names; None when it was not given (then: all of them)."""
    return frozenset(value) if value else None


def targeting(f: Any) -> Any:
    f = hosts_option(f)
    f = names_option("--only", "only", metavar="S1,S2",
                     help="Only these workloads; others are left exactly as they are "
                          "(comma-separated, or repeat the option).")(f)
    f = names_option("--skip-platform", "skip_platform", metavar="NAMES",
                     help="Leave these platform services (gateway, logging) out, and as they "
                          "are on their hosts (comma-separated, or repeat the option).")(f)
    return f


def _site_for(inventory: str, skip_platform: tuple[str, ...]) -> Any:
    """The validated site with its platform services, minus the skipped ones (said aloud)."""
    # imported here: keeps hostctl --help and start-up fast
    from hostctl.spec.platform import check_skip, platform_services, with_platform
    from hostctl.validate import load_site

    skip = check_skip(skip_platform)
    site = load_site(inventory)
    for service in platform_services(site):
        if service.name in skip:
            click.echo(f"{service.name}: skipped (--skip-platform {service.name}): "
                       f"{service.workload.name} is neither deployed nor changed", err=True)
    return with_platform(site, skip), skip


def _check_names(site: Any, hosts: frozenset[str] | None, only: frozenset[str] | None) -> None:
    # imported here: keeps hostctl --help and start-up fast
    from hostctl.spec.schema import did_you_mean

    inv = site.inventory
    for h in sorted(hosts or ()):
        if h not in inv.hosts:
            raise HostctlError(f"--hosts: no host '{h}' in {inv.file}"
                               f"{did_you_mean(h, inv.hosts)}")
    names = {w.name for w in site.workloads}
    for n in sorted(only or ()):
        if n not in names:
            raise HostctlError(f"--only: no workload '{n}' in the specs{did_you_mean(n, names)}")


@click.command()
@inventory_option
@targeting
@json_option
@click.option("--no-diff", is_flag=True, help="List changed files without their diffs.")
def plan(inventory: str, hosts: tuple[str, ...], only: tuple[str, ...],
         skip_platform: tuple[str, ...],
         as_json: bool, no_diff: bool) -> None:
    """Show what a deploy would change on each host. Exit status: 0 no changes, 1 changes,
    2 errors. Services handed to the k3s cluster are noted, never started."""
    site, skip = _site_for(inventory, skip_platform)
    _check_names(site, _names(hosts), _names(only))
    connect_early(site, _names(hosts))
    # imported here: keeps hostctl --help and start-up fast
    from hostctl.deploy.run import Deploy, DeployOptions
    from hostctl.hosts.session import command_line

    options = DeployOptions(dry_run=True, hosts=_names(hosts), only=_names(only),
                            command=command_line(), skip_platform=skip)
    run = Deploy.for_site(site, options)
    with run.connected():
        the_plan = run.gather(take_lock=False)
    _show_plan(run, the_plan, as_json, not no_diff)
    sys.exit(2 if the_plan.errors else 1 if the_plan.changed else 0)


def _show_plan(run: Any, the_plan: Any, as_json: bool, diffs: bool) -> None:
    # imported here: keeps hostctl --help and start-up fast
    from hostctl.deploy.plan_output import plan_json, plan_text

    if as_json:
        click.echo(json.dumps(plan_json(the_plan), indent=2))
        return
    files = {name: t.files for name, t in run.targets.items()}
    for line in plan_text(the_plan, run.facts, files, diffs):
        click.echo(line)


@click.command()
@inventory_option
@targeting
@click.option("-y", "--yes", is_flag=True, help="Apply without asking for confirmation.")
@click.option("--dry-run", is_flag=True, help="Show the plan and stop (exit as `plan` does).")
@click.option("--serial", type=click.IntRange(min=1), metavar="N",
              help="Deploy N hosts at a time; stop at the first wave that fails.")
@click.option("--fail-fast", is_flag=True,
              help="Change nothing anywhere if any host cannot be planned; stop after the "
                   "first failing host.")
@click.option("--force-unlock", is_flag=True,
              help="Break a deploy lock older than --lock-ttl (its holder died).")
@click.option("--lock-ttl", default="30m", show_default=True, metavar="DURATION",
              help="Age after which a lock counts as stale.")
@json_option
def deploy(inventory: str, hosts: tuple[str, ...], only: tuple[str, ...],
           skip_platform: tuple[str, ...], yes: bool, dry_run: bool, serial: int | None,
           fail_fast: bool, force_unlock: bool, lock_ttl: str, as_json: bool) -> None:
    """Make every host run what the specs say: write units, fetch images, restart what
    changed, wait for health, and roll a host back if anything on it fails.

    On a terminal the plan is shown and confirmed first (--yes skips the question; without
    a terminal nothing is asked). Exit status 0 when every host ends deployed or unchanged.

    A service handed to the k3s cluster (`hostctl k8s handoff`) stays stopped on the hosts
    and routed to the cluster until `hostctl k8s handoff --back SERVICE`.
    """
    # imported here: keeps hostctl --help and start-up fast
    from hostctl.spec.schema import parse_duration

    ttl = parse_duration(lock_ttl)
    if ttl is None:
        raise click.BadParameter(f"'{lock_ttl}' is not a duration such as 30m",
                                 param_hint="--lock-ttl")
    site, skip = _site_for(inventory, skip_platform)
    _check_names(site, _names(hosts), _names(only))
    connect_early(site, _names(hosts))
    # imported here, while the hosts are being connected: keeps start-up fast
    from hostctl.deploy.progress import progress_view
    from hostctl.deploy.run import Deploy, DeployOptions, exit_status
    from hostctl.hosts.session import command_line

    options = DeployOptions(dry_run=dry_run, hosts=_names(hosts), only=_names(only),
                            serial=serial, fail_fast=fail_fast, force_unlock=force_unlock,
                            lock_ttl=ttl, command=command_line(), skip_platform=skip)
    with progress_view() as view:
        run = Deploy.for_site(site, options, progress=view)
        with run.connected():
            the_plan = run.gather(take_lock=not dry_run)
            if dry_run:
                _show_plan(run, the_plan, as_json, True)
                sys.exit(2 if the_plan.errors else 1 if the_plan.changed else 0)
            if not as_json:
                _show_plan(run, the_plan, False, True)
            if fail_fast and the_plan.errors:
                run.release_locks("cancelled: --fail-fast and a host could not be planned",
                                  the_plan)
                raise HostctlError("--fail-fast: nothing was changed, because: "
                                   + "; ".join(the_plan.errors.values()))
            if the_plan.changed and not yes and sys.stdin.isatty() and sys.stdout.isatty() \
                    and not click.confirm("Apply these changes?", default=False):
                run.release_locks("declined", the_plan)
                click.echo("Nothing was changed.")
                sys.exit(1)
            outcomes = run.apply(the_plan)
            gateway = run.sync_gateway()
            for note in run.apply_retention():  # Elasticsearch's lifecycle policy, template
                click.echo(note, err=True)
    _show_outcomes(outcomes, as_json, gateway)
    sys.exit(exit_status(outcomes) or (1 if any(not g.ok for g in gateway) else 0))


def _show_outcomes(outcomes: Any, as_json: bool, gateway: Any = ()) -> None:
    if as_json:
        click.echo(json.dumps({"ok": all(o.ok for o in outcomes.values()) and all(
            g.ok for g in gateway), "gateway": {g.host: {"ok": g.ok, "lines": g.lines}
                                                for g in gateway}, "hosts": {
            name: {"status": o.status, "message": o.message, "release": o.release,
                   "seconds": o.seconds, "round_trips": o.round_trips,
                   "counts": o.plan.counts() if o.plan else {},
                   "health": [{"unit": h.unit, "ok": h.ok, "detail": h.detail,
                               "log": list(h.log)} for h in o.health]}
            for name, o in outcomes.items()}}, indent=2))
        return
    click.echo("")
    width = max((len(n) for n in outcomes), default=4)
    for name, o in outcomes.items():
        colour = "green" if o.ok else "red"
        line = f"{name:<{width}}  {click.style(o.status, fg=colour)}"
        if o.message:
            line += f"  {o.message.removeprefix(name + ': ')}"
        click.echo(line)
        for h in o.health:
            if not h.ok:
                click.echo(f"{'':<{width}}  {h.unit}: unhealthy ({h.detail}); last log lines:")
                for log in h.log[-10:]:
                    click.echo(f"{'':<{width}}    | {log}")
    for g in gateway:
        for line in g.lines:
            click.echo(f"gateway {line}")
    bad = [n for n, o in outcomes.items() if not o.ok]
    click.echo(f"{len(outcomes) - len(bad)}/{len(outcomes)} host(s) ok"
               + (f"; failed: {', '.join(bad)}" if bad else ""))


@click.command()
@inventory_option
@hosts_option
@click.option("--to", "to", metavar="RELEASE",
              help="The release to return to (default: the one before the current one).")
@click.option("-y", "--yes", is_flag=True, help="Roll back without asking for confirmation.")
@json_option
def rollback(inventory: str, hosts: tuple[str, ...], to: str | None, yes: bool,
             as_json: bool) -> None:
    """Put hosts back on an earlier release (`hostctl releases` lists them): its unit and
    env files return, the units that differ restart, and health is checked again."""
    # imported here: keeps hostctl --help and start-up fast
    from hostctl.deploy.progress import progress_view
    from hostctl.deploy.run import Deploy, DeployOptions, exit_status
    from hostctl.hosts.session import command_line
    from hostctl.spec.platform import with_platform
    from hostctl.validate import load_site

    site = with_platform(load_site(inventory))
    _check_names(site, _names(hosts), None)
    options = DeployOptions(hosts=_names(hosts), command=command_line())
    with progress_view() as view:
        run = Deploy.for_site(site, options, progress=view)
        with run.connected():
            run.gather(take_lock=True)
            the_plan = run.rollback_plan(to)
            if not as_json:
                for name in the_plan.hosts:
                    target = run.rollback_to.get(name)
                    if target:
                        click.echo(f"{name}: back to release {target}")
                _show_plan(run, the_plan, False, True)
            if the_plan.changed and not yes and sys.stdin.isatty() and sys.stdout.isatty() \
                    and not click.confirm("Roll back?", default=False):
                run.release_locks("declined")
                click.echo("Nothing was changed.")
                sys.exit(1)
            outcomes = run.apply_rollback(the_plan)
    _show_outcomes(outcomes, as_json)
    sys.exit(exit_status(outcomes))


@click.command()
@inventory_option
@hosts_option
@json_option
def releases(inventory: str, hosts: tuple[str, ...], as_json: bool) -> None:
    """List the releases kept on each host (newest last; * marks the current one)."""
    # imported here: keeps hostctl --help and start-up fast
    from hostctl.hosts import scripts as S
    from hostctl.hosts.session import session
    from hostctl.runner.base import RunnerError
    from hostctl.runner.pool import run_parallel
    from hostctl.validate import load_site

    site = load_site(inventory)
    _check_names(site, _names(hosts), None)
    with session(site, _names(hosts)) as run:
        results = run_parallel(run.runners, lambda r: r.run(
            ["sh", "-s"], stdin=S.releases_script().encode(), timeout=60))
    report: dict[str, Any] = {}
    failed = False
    for name, res in results.items():
        if isinstance(res, RunnerError | Exception):
            report[name] = {"error": str(res)}
            failed = True
            continue
        current, manifests = S.parse_releases(res.stdout)
        report[name] = {"current": current, "releases": [
            {"release": r, "created": m.get("created"), "by": m.get("by"),
             "revision": m.get("revision"), "files": len(m.get("files") or []),  # type: ignore[arg-type]
             "status": m.get("status") or "ok"}
            for r, m in sorted(manifests.items())]}
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        # imported here: keeps hostctl --help and start-up fast
        import time as _time

        for name, info in report.items():
            if "error" in info:
                click.echo(f"{name}: ERROR {info['error']}")
                continue
            if not info["releases"]:
                click.echo(f"{name}: no releases yet")
            for r in info["releases"]:
                mark = "*" if r["release"] == info["current"] else " "
                when = (_time.strftime("%Y-%m-%d %H:%M:%S", _time.gmtime(r["created"]))
                        if r["created"] else "-")
                note = {"rolled-back": "  (failed, rolled back)",
                        "unverified": "  (unverified: its health gate did not finish)"
                        }.get(r["status"], "")
                click.echo(f"{name} {mark} {r['release']}  {when}  {r['by'] or '-'}  "
                           f"rev {r['revision'] or '-'}  {r['files']} file(s){note}")
    sys.exit(1 if failed else 0)


COMMANDS = (plan, deploy, rollback, releases)
