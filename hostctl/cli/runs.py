"""`hostctl runs` (the history of job runs, searched fleet-wide), `runs show` and `compare`.

The records live on the hosts (each keeps its runs' records, metric summaries and points):
these commands read every host that runs jobs, one round trip each, and work on what came
back. Presentation only: the search is jobs.history, the comparison jobs.compare, the
pictures jobs.plot.
"""

from __future__ import annotations

import json
import shutil
import sys
from typing import Any

import click

from hostctl.cli.options import INVENTORY_HELP, inventory_option, json_option

COMPARE_LIMIT = 20  # runs of an experiment compared when --limit does not say
RUNS_SHOWN = 50  # rows of the `runs` table when neither --limit nor --all says (as `jobs`)
# These commands read the hosts' records and render nothing: the inventory and specs get
# every check but validate's final ones (what only rendering shows), and the command
# need not import the renderers (a quarter of a second).
NO_RENDER = ()


def _err(text: str) -> None:
    click.secho(text, err=True, fg="red")


def _job_hosts(site: Any) -> list[str]:
    # imported here: keeps `hostctl --help` and start-up fast
    from hostctl.jobs.plan import job_host_names

    return job_host_names(site)


def _prices(site: Any) -> tuple[dict[str, Any] | None, dict[str, dict[str, str]]]:
    """The inventory's prices (Prices.table(), as the exporters get them) and each host's
    GPU models, which a run's GPU time is priced by."""
    # imported here: keeps `hostctl --help` and start-up fast
    from hostctl.spec.sections.metrics import device_models

    met = site.inventory.metrics
    p = met.prices if met is not None else None
    return (None if p is None else p.table()), device_models(site.inventory.hosts.values())


def _read(site: Any, fields: Any = None) -> tuple[list[Any], list[str], int]:
    # imported here: keeps `hostctl --help` and start-up fast
    from hostctl.hosts.session import session
    from hostctl.jobs import ops

    with session(site, _job_hosts(site)) as conn:
        return ops.read_runs(site, conn.runners, fields)


@click.group("runs", invoke_without_command=True)
# Not required here: `hostctl runs show` takes it before or after `show`.
@click.option("-i", "--inventory", "inventory", envvar="HOSTCTL_INVENTORY",
              type=click.Path(dir_okay=False), metavar="FILE", help=INVENTORY_HELP)
@click.option("--experiment", metavar="E", help="Only runs of this experiment.")
@click.option("--job", metavar="J", help="Only runs of this job.")
@click.option("--project", metavar="P", help="Only runs of this project's jobs.")
@click.option("--since", metavar="AGE",
              help="Only runs submitted in the last AGE: 30m, 12h, 7d, 2w.")
@click.option("--where", metavar="EXPR",
              help="Only runs where EXPR holds: NAME OP VALUE joined by `and`, OP one of "
                   "= != < <= > >=, NAME a field (job, state, host, exit, ...), a metric "
                   "(its last value; NAME.min, NAME.max) or a parameter (params.NAME). "
                   "Example: 'val_auc>0.9 and params.LR=0.01'.")
@click.option("--sort", metavar="[-]KEY",
              help="Order by a field, metric or parameter; a leading - for descending "
                   "(runs lacking it come last). Default: newest first.")
@click.option("--limit", type=click.IntRange(1), metavar="N",
              help=f"At most N runs (the table's default: the first {RUNS_SHOWN}; --json: "
                   "all).")
@click.option("--all", "show_all", is_flag=True, help="Every matching run in the table.")
@json_option
@click.pass_context
def runs_cmd(ctx: click.Context, inventory: str | None, experiment: str | None, job: str | None,
             project: str | None, since: str | None, where: str | None, sort: str | None,
             limit: int | None, show_all: bool, as_json: bool) -> None:
    """Search the runs every host keeps: newest first, with their key metrics.

    Each host keeps the last `jobs: keep_runs` (default 500) ended runs of each job, with
    its experiment, note, parameters, image id, spec hash, git revision, times, exit
    status, tries, and its metrics' summaries (last, min, max). `hostctl runs show RUN_ID`
    prints one run whole; `hostctl compare` puts runs side by side. Exit status 1 when a
    host could not be read (the others are listed).
    """
    if ctx.invoked_subcommand is not None:
        return
    if inventory is None:
        raise click.UsageError("Missing option '-i' / '--inventory'.")
    # imported here: keeps `hostctl --help` and start-up fast
    from hostctl.jobs import history as HI
    from hostctl.spec.loader import load_site

    site = load_site(inventory, None, final_checks=NO_RENDER)
    # A bad --since, --where or --sort is refused before any host is asked.
    HI.find_runs([], now_ms=0, since=since, where=where, sort=sort, limit=limit)
    # The table reads only what it shows and filters on; --json everything.
    records, errors, now = _read(site, None if as_json else HI.fields_needed(where, sort))
    found = HI.find_runs(records, now_ms=now, experiment=experiment, job=job,
                         project=project, since=since, where=where, sort=sort, limit=limit)
    matched = len(found)
    if limit is None and not show_all and not as_json:
        found = found[:RUNS_SHOWN]
    if as_json:
        prices = _prices(site)
        click.echo(json.dumps({"ok": not errors, "errors": errors, "count": len(found),
                               "runs": [HI.run_json(r, now, *prices) for r in found]},
                              indent=2))
    else:
        for text in errors:
            _err(f"error: {text}")
        if found:  # one write: a search may list thousands of runs
            click.echo("\n".join(HI.runs_lines(found, now, HI.key_metrics(
                found, HI.mentioned(where, sort)))))
        if len(found) < matched:
            click.echo(f"({len(found)} of {matched} matching runs; --limit N or --all for "
                       "more)", err=True)
        else:
            click.echo("no runs match" if records else "no runs on record")
    sys.exit(1 if errors else 0)


@runs_cmd.command("show")
@click.option("-i", "--inventory", "inventory", envvar="HOSTCTL_INVENTORY",
              type=click.Path(dir_okay=False), metavar="FILE", help=INVENTORY_HELP)
@click.argument("run_id")
@json_option
@click.pass_context
def runs_show_cmd(ctx: click.Context, inventory: str | None, run_id: str,
                  as_json: bool) -> None:
    """Everything one run's record holds, with the exact `docker run` its unit ran (secret
    values are never in it: they reach the container by name, from the unit's env file)."""
    # `hostctl runs -i FILE show ID` and `hostctl runs show -i FILE ID` alike
    inventory = inventory or (ctx.parent.params.get("inventory") if ctx.parent else None)
    if inventory is None:
        raise click.UsageError("Missing option '-i' / '--inventory'.")
    # imported here: keeps `hostctl --help` and start-up fast
    from hostctl.hosts.session import session
    from hostctl.jobs import history as HI
    from hostctl.jobs import ops
    from hostctl.jobs import plan as P
    from hostctl.jobs import provenance as PV
    from hostctl.jobs.view import show_lines
    from hostctl.spec.loader import load_site

    P.check_run_id(run_id)
    site = load_site(inventory, None, final_checks=NO_RENDER)
    with session(site, _job_hosts(site)) as conn:
        shown, _ = ops.show_run(conn.runners, run_id)
    rec = shown.record
    assert rec is not None  # show_run raises when no host has it
    argv = PV.expand_docker_run(rec.docker_run, shown.unit_env) if rec.docker_run else []
    spec = next((w for w in site.jobs if w.name == rec.job), None)
    secrets = list(spec.secrets) if spec is not None else []
    now = max(rec.ended, rec.started, rec.submitted)
    if as_json:
        out = HI.run_json(rec, now, *_prices(site))
        out.update({"docker_run": argv or None, "secrets": secrets})
        click.echo(json.dumps(out, indent=2))
        return
    for line in show_lines(HI.run_json(rec, now, *_prices(site)), argv, secrets):
        click.echo(line)


@click.command("compare")
@inventory_option
@click.argument("run_ids", nargs=-1, metavar="[RUN_ID]...")
@click.option("--experiment", metavar="E",
              help="Compare this experiment's runs (the newest --limit of them).")
@click.option("--metric", "metrics", multiple=True, metavar="M",
              help="Only this metric (repeatable; default: every metric the runs report).")
@click.option("--lower", multiple=True, metavar="M",
              help="For M, lower is better (repeatable). By default `loss`, `error` and "
                   "names ending in them are lower-is-better, others higher.")
@click.option("--limit", type=click.IntRange(1, 200), default=COMPARE_LIMIT, show_default=True,
              metavar="N", help="With --experiment: its N newest runs.")
@click.option("--plot", "plot_to", metavar="FILE",
              help="Draw each metric's curve over its steps, one line per run: FILE.png or "
                   "FILE.svg (needs hostctl[plot]), or - for the terminal.")
@json_option
def compare_cmd(inventory: str, run_ids: tuple[str, ...], experiment: str | None,
                metrics: tuple[str, ...], lower: tuple[str, ...], limit: int,
                plot_to: str | None, as_json: bool) -> None:
    """Runs side by side: one column per run, the parameters that differ, each metric's
    last, min and max, and the best run per metric marked with *.

    Give RUN_IDs, or --experiment E. "Best" is lower for metrics named loss, error or
    ending in _loss or _error (and --lower M), higher for the others.
    """
    # imported here: keeps `hostctl --help` and start-up fast
    from hostctl.errors import HostctlError
    from hostctl.hosts.session import session
    from hostctl.jobs import compare as C
    from hostctl.jobs import history as HI
    from hostctl.jobs import ops
    from hostctl.jobs import plan as P
    from hostctl.spec.loader import load_site

    if bool(run_ids) == bool(experiment):
        raise click.UsageError("give RUN_IDs or --experiment E (one of them)")
    for run_id in run_ids:
        P.check_run_id(run_id)
    if plot_to is not None and plot_to != "-" and not plot_to.lower().endswith((".png", ".svg")):
        raise click.BadParameter("give a file name ending in .png or .svg, or - for the "
                                 "terminal", param_hint="--plot")
    site = load_site(inventory, None, final_checks=NO_RENDER)
    with session(site, _job_hosts(site)) as conn:
        if experiment:
            # Which runs: a listing of the few fields that choose them; then those runs whole.
            listed, errors, now = ops.read_runs(site, conn.runners, HI.LISTING_FIELDS)
            picked = HI.find_runs(listed, now_ms=now, experiment=experiment)[:limit]
            if not picked:
                raise HostctlError(f"no runs of experiment {experiment!r} on record"
                                   + (f" (not read: {'; '.join(errors)})" if errors else ""))
            wanted = [r.id for r in picked]
        else:
            wanted = list(dict.fromkeys(run_ids))
            errors = []
        records, more = ops.read_selected(site, conn.runners, wanted)
        errors += more
        by_id = {r.id: r for r in records}
        missing = [i for i in wanted if i not in by_id]
        if missing:
            hint = f" (not read: {'; '.join(errors)})" if errors else ""
            raise HostctlError(f"no run {', '.join(missing)} on any host{hint}; "
                               "`hostctl runs` lists runs")
        chosen = [by_id[i] for i in wanted]
        names = C.choose_metrics(chosen, metrics)
        points: dict[str, Any] = {}
        if plot_to is not None:
            points, perrors = ops.read_points(conn.runners, chosen)
            errors += perrors
    for text in errors:
        _err(f"error: {text}")
    if as_json:
        click.echo(json.dumps(C.compare_json(chosen, names, lower), indent=2))
    else:
        for line in C.compare_lines(chosen, names, lower):
            click.echo(line)
    if plot_to is not None:
        _plot(plot_to, chosen, points, names)


def _plot(target: str, records: list[Any], points: dict[str, Any], metrics: list[str]) -> None:
    # imported here: keeps `hostctl --help` and start-up fast
    from hostctl.jobs import plot as PL

    series = PL.plot_series(records, points, metrics)
    if target == "-":
        size = shutil.get_terminal_size((100, 30))
        click.echo(PL.plot_terminal(series, size.columns, max(12, size.lines - 2),
                                    color=sys.stdout.isatty()), err=False)
        return
    PL.plot_png(target, series)
    click.echo(f"plot: {target}", err=True)


COMMANDS = (runs_cmd, compare_cmd)
