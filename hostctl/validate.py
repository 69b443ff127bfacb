"""`validate`: the inventory and specs parsed and checked (hostctl.spec), then what only
rendering shows, so that whatever render, deploy, Kong or Kubernetes would refuse is refused
here first: every `docker run` word by the rule render applies and, where a unit line could
be too long, the units rendered; the Kong file built and put through Kong's rules; the
Kubernetes objects rendered and checked. These final checks render, so they live above
render and spec (spec.loader runs the final checks its caller hands it)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from hostctl.errors import Problem
from hostctl.gateway.declarative import build_declarative, preflight
from hostctl.k8s.site_checks import kubernetes_problems
from hostctl.observability.logging_args import log_args
from hostctl.render import site as render
from hostctl.render.docker_cmd import UNIT_JOURNAL, health_cmd_word
from hostctl.spec import checks, loader
from hostctl.spec import model as m
from hostctl.spec.checks import at
from hostctl.spec.placement import Instance, eligible_hosts
from hostctl.spec.platform import PLATFORM_PROJECT
from hostctl.spec.secrets import SecretStore
from hostctl.systemd.quoting import (
    MAX_VALUE_BYTES,
    UnitQuotingError,
    argument_problem,
    setting_value,
)


def load_site(inventory_path: str, environ: Mapping[str, str] | None = None) -> m.Site:
    """Parse and validate everything; raise ConfigError with every problem found."""
    return loader.load_site(inventory_path, environ, final_checks=FINAL_CHECKS)


def problems(inv: m.Inventory, ws: list[m.Workload], store: SecretStore) -> list[Problem]:
    """Every problem of an already parsed site: the cross-checks, then the final checks."""
    found = checks.run_all(inv, ws, store)
    for final in FINAL_CHECKS:
        found.extend(final(inv, ws, store, bool(found)))
    return found


def kong_accepts(inv: m.Inventory, ws: list[m.Workload], store: SecretStore,
                 others_found: bool) -> Iterator[Problem]:
    """The Kong file these specs make, through Kong's rules (kong_schema), located at the
    spec or inventory key behind the field; built only from a site with no other problem."""
    gw = inv.gateway if not others_found else None
    if gw is None:
        return
    own = tuple(w for w in ws if w.project != PLATFORM_PROJECT)
    config, provenance = build_declarative(m.Site(inventory=inv, workloads=own, secrets=store),
                                           gw)
    yield from preflight(config, provenance)


def _argv_words(w: m.Workload) -> Iterator[tuple[str, str, str]]:
    """(path, word, how to fix it) for every spec value that becomes one `docker run`
    argument (docker_cmd.common_run_args, health_args, command_tail)."""
    for key, value in w.env.items():
        yield f"env/{key}", f"{key}={value}", "shorten the value (NAME=VALUE is one argument)"
    for i, word in enumerate(w.command or ()):
        yield f"command/{i}", word, "change this word"
    for i, word in enumerate(w.args):
        yield f"args/{i}", word, "change this word"
    if w.health is not None and w.health.command is not None:
        yield "health/command", health_cmd_word(w.health.command), \
            "shorten the command (Docker receives it as one argument)"


def words_fit_units(inv: m.Inventory, ws: list[m.Workload], _: SecretStore,
                    others_found: bool) -> Iterator[Problem]:
    """Every spec value that render writes into a unit's `docker run` line passes the rule
    render applies (systemd.quoting), here, with its field; then what only the whole line
    can show (its length) by rendering the workload's units as deploy would."""
    for w in ws:
        found = False
        for path, word, fix in _argv_words(w):
            why = argument_problem(word)
            if why is not None:
                found = True
                yield at(w, path, f"{why}; {fix}")
        if not found:
            yield from _units_render(w, inv)


# exec_line writes a byte as at most 4 characters (`\xNN`); the rest of a `docker run` line
# (names, labels, the docker path, logging options) stays well under this.
_LINE_SLACK = 64 * 1024


def _may_not_fit(w: m.Workload) -> bool:
    """Whether the workload's words could make a unit line too long (rendering tells)."""
    words = [word for _, word, _ in _argv_words(w)]
    words += [f"{v.source}:{v.target}" for v in w.volumes]
    size = sum(len(word.encode("utf-8", "surrogatepass")) for word in words)
    return 4 * size + _LINE_SLACK > MAX_VALUE_BYTES


def _units_render(w: m.Workload, inv: m.Inventory) -> Iterator[Problem]:
    try:
        setting_value(w.source)  # the unit's "# spec:" comment: the spec file's path
    except UnitQuotingError as exc:
        yield at(w, "", f"its file name cannot be written into a systemd unit: {exc}; "
                        "rename the file")
        return
    if not _may_not_fit(w):
        return

    try:
        log = log_args(inv.logging, inv, w)
    except KeyError:  # the logging host is unknown: observability_consistent says so
        log = list(UNIT_JOURNAL)
    dockers = {h.docker: h for h in eligible_hosts(w, inv)}  # the rest is the same per host
    for host in dockers.values():
        try:
            if w.is_job:
                render.job_unit(w, host, inv.site, log, render.project_priority(inv, w.project))
                if w.schedule is not None:
                    render.job_timer(w, inv.site)
            else:
                render.service_unit(Instance(w, host, w.instances), inv.site, log)
        except UnitQuotingError as exc:
            yield at(w, "", f"cannot be written into a systemd unit for {host.name}: {exc}; "
                            "shorten env values, args or command")
            return


# In order, each told whether anything was found before it. kubernetes_problems: what a
# cluster would refuse, for every site (k8s render must never refuse a site that validates).
FINAL_CHECKS: tuple[loader.FinalCheck, ...] = (words_fit_units, kong_accepts,
                                               kubernetes_problems)
