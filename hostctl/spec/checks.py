"""Cross-checks between specs, the inventory and the secrets source.

Each check is a small named function returning problems; its message says how to fix it.
They run only on specs that passed their own schema, and all of them run, so an operator
sees every problem at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from hostctl.errors import Problem
from hostctl.spec import model as m
from hostctl.spec.located import at, digest_push_problem
from hostctl.spec.placement import (
    eligible_hosts,
    gpu_models_needed,
    gpus_needed,
    placed_on,
    service_instances,
)
from hostctl.spec.schema import did_you_mean
from hostctl.spec.secrets import SecretStore, value_problem
from hostctl.spec.sections.gateway import check_gateway
from hostctl.spec.sections.observability import check_observability
from hostctl.spec.sections.projects import check_projects
from hostctl.systemd.calendar import CalendarError, never_fires, parse_calendar

Check = Callable[[m.Inventory, list[m.Workload], SecretStore], Iterable[Problem]]


def unique_names(inv: m.Inventory, ws: list[m.Workload], _: SecretStore) -> Iterator[Problem]:
    seen: dict[str, m.Workload] = {}
    for w in ws:
        first = seen.setdefault(w.name, w)
        if first is not w:
            yield at(w, "name", f"'{w.name}' is already the name of the {first.kind} at "
                                f"{first.file}:{first.lines.get('name', first.line)}; "
                                "names must be unique across all specs")


def known_profiles(inv: m.Inventory, ws: list[m.Workload], _: SecretStore) -> Iterator[Problem]:
    for w in ws:
        name = w.resources.profile
        if name is not None and name not in inv.profiles:
            known = ", ".join(sorted(inv.profiles)) or "none defined"
            yield at(w, "resources", f"unknown profile '{name}'"
                     + did_you_mean(name, inv.profiles)
                     + f" (known: {known}); define it under profiles: in {inv.file}")


def placement_matches(inv: m.Inventory, ws: list[m.Workload], _: SecretStore
                      ) -> Iterator[Problem]:
    for w in ws:
        for i, host in enumerate(w.placement.hosts):
            if host not in inv.hosts:
                yield at(w, f"placement/hosts/{i}", f"no host '{host}' in {inv.file}"
                         + did_you_mean(host, inv.hosts)
                         + f" (known: {', '.join(inv.hosts)})")
        if all(h in inv.hosts for h in w.placement.hosts) and not eligible_hosts(w, inv):
            yield at(w, "placement", "matches no host of the inventory; check the host "
                                     "names and labels under placement")


def gpus_available(inv: m.Inventory, ws: list[m.Workload], _: SecretStore) -> Iterator[Problem]:
    for w in ws:
        need = gpus_needed(w, inv)
        hosts = eligible_hosts(w, inv)
        if need == 0 or not hosts:
            continue
        models = gpu_models_needed(w, inv)
        if models:
            yield from _models_available(w, need, models, hosts)
            continue
        short = [h.name for h in hosts if h.gpus < need]
        if w.is_job and len(short) == len(hosts):
            yield at(w, "resources", f"needs {need} GPU(s) but no eligible host has that many "
                                     f"({', '.join(short)}); place it on a GPU host")
        elif not w.is_job and short:
            yield at(w, "resources", f"needs {need} GPU(s) on every host it runs on, but "
                                     f"{', '.join(short)} ha{'s' if len(short) == 1 else 've'} "
                                     "fewer; narrow placement to GPU hosts")


def _host_gpus_text(h: m.Host) -> str:
    """`gpu-1 has 2 a100-80g, 1 l4`, `app-1 has 4 GPU(s) without a model`, `... no GPUs`."""
    if not h.gpus:
        return f"{h.name} has no GPUs"
    kinds = h.gpu_models()
    return f"{h.name} has " + ", ".join(
        f"{n} {model}" if model else f"{n} GPU(s) without a model" for model, n in kinds.items())


def _models_available(w: m.Workload, need: int, models: tuple[str, ...], hosts: list[m.Host]
                      ) -> Iterator[Problem]:
    asked = " or ".join(models)
    short = [h for h in hosts if h.gpus_of(models) < need]
    have = "; ".join(_host_gpus_text(h) for h in short)
    if w.is_job and len(short) == len(hosts):
        yield at(w, "resources", f"needs {need} GPU(s) of model {asked} but no eligible host "
                                 f"has that many ({have}); ask for a model these hosts have, "
                                 "or place it on a host with that model (declare models "
                                 "under the host's gpus: [{model: NAME, count: N}])")
    elif not w.is_job and short:
        yield at(w, "resources", f"needs {need} GPU(s) of model {asked} on every host it "
                                 f"runs on ({have}); narrow placement to hosts with that "
                                 "model")


def service_gpus_fit(inv: m.Inventory, ws: list[m.Workload], _: SecretStore
                     ) -> Iterator[Problem]:
    """Every instance of a GPU service holds its own devices: together they must fit."""
    for host in inv.hosts.values():
        users = [w for w in ws if not w.is_job and gpus_needed(w, inv) and placed_on(w, host)]
        total = sum(gpus_needed(w, inv) * w.instances for w in users)
        # A host short even for one instance is gpus_available's to report.
        if users and total > host.gpus >= max(gpus_needed(w, inv) for w in users):
            parts = ", ".join(f"{w.name} {w.instances}x{gpus_needed(w, inv)}" for w in users)
            yield at(users[-1], "resources",
                     f"the GPU services on {host.name} need {total} GPU(s) together ({parts}) "
                     f"and it has {host.gpus}: some instances would never start; lower "
                     "instances or narrow placement")
            continue
        # Services asking for the same models share that model's devices.
        by_models: dict[tuple[str, ...], list[m.Workload]] = {}
        for w in users:
            if gpu_models_needed(w, inv):
                by_models.setdefault(gpu_models_needed(w, inv), []).append(w)
        for models, group in by_models.items():
            total = sum(gpus_needed(w, inv) * w.instances for w in group)
            have = host.gpus_of(models)
            if total > have >= max(gpus_needed(w, inv) for w in group):
                parts = ", ".join(f"{w.name} {w.instances}x{gpus_needed(w, inv)}"
                                  for w in group)
                yield at(group[-1], "resources",
                         f"the GPU services on {host.name} asking for model "
                         f"{' or '.join(models)} need {total} GPU(s) together ({parts}) and "
                         f"it has {have} of that model: some instances would never start; "
                         "lower instances or narrow placement")


def health_ports(inv: m.Inventory, ws: list[m.Workload], _: SecretStore) -> Iterator[Problem]:
    for w in ws:
        h = w.health
        if h is None:
            continue
        given = [k for k in ("http", "tcp", "command") if getattr(h, k) is not None]
        if len(given) != 1:
            yield at(w, "health", "give exactly one of http, tcp or command"
                     + (f" (found: {', '.join(given)})" if given else ""))
            continue
        kind = given[0]
        port = h.port
        if port is not None and port not in w.ports:
            known = ", ".join(w.ports) or "none: add ports"
            yield at(w, f"health/{kind}/port",
                     f"'{port}' is not a port name of this service"
                     + did_you_mean(port, w.ports) + f" (known: {known})")
        if h.timeout > h.interval:
            yield at(w, "health/timeout", "must not be longer than health/interval")


def route_ports(inv: m.Inventory, ws: list[m.Workload], _: SecretStore) -> Iterator[Problem]:
    for w in ws:
        r = w.route
        if r is None:
            continue
        if not r.paths and not r.hosts:
            yield at(w, "route", "a route needs a path prefix (path: /api) or hosts")
        if r.port is None:
            if len(w.ports) != 1:
                yield at(w, "route", "a route needs a port: name it with route/port"
                         + (f" (known: {', '.join(w.ports)})" if w.ports else
                            ", and declare it under ports: {http: {container: 8080, "
                            "host: 18080}}"))
                continue
            port_name = next(iter(w.ports))
        else:
            port_name = r.port
            if port_name not in w.ports:
                yield at(w, "route/port", f"'{port_name}' is not a port name of this service"
                         + did_you_mean(port_name, w.ports)
                         + f" (known: {', '.join(w.ports) or 'none'})")
                continue
        if w.ports[port_name].protocol != "tcp":
            yield at(w, "route/port" if r.port is not None else "route",
                     f"'{port_name}' is a {w.ports[port_name].protocol} port, and the gateway "
                     "proxies HTTP, which runs over TCP: route a tcp port")
            continue
        if w.ports[port_name].host is None:
            yield at(w, f"ports/{port_name}", "is routed by the gateway, so it must be "
                                              "published: add host: PORT")


RATE_PERIODS = ("second", "minute", "hour", "day")


def route_rate_limits(inv: m.Inventory, ws: list[m.Workload], _: SecretStore
                      ) -> Iterator[Problem]:
    """A rate limit Kong's rate-limiting plugin accepts: at least one period, and a longer
    period never allowing fewer requests than a shorter one."""
    for w in ws:
        limit = w.route.rate_limit if w.route is not None else None
        if limit is None:
            continue
        given = [(p, getattr(limit, p)) for p in RATE_PERIODS if getattr(limit, p) is not None]
        if not given:
            yield at(w, "route/rate_limit", "sets no limit: give requests per second, minute, "
                                            "hour or day, e.g. {minute: 600}, or remove it")
        for i, (shorter, low) in enumerate(given):
            wrong = next(((p, v) for p, v in given[i + 1:] if v < low), None)
            if wrong is not None:
                yield at(w, f"route/rate_limit/{wrong[0]}",
                         f"allows fewer requests per {wrong[0]} ({wrong[1]}) than per {shorter} "
                         f"({low}), which Kong refuses: raise it to at least {low}, or lower "
                         f"{shorter}")
                break


def host_ports(inv: m.Inventory, ws: list[m.Workload], _: SecretStore) -> Iterator[Problem]:
    taken: dict[tuple[str, str, int], tuple[m.Workload, str]] = {}
    for w in ws:
        for pname, port in w.ports.items():
            if port.host is not None and port.host + w.instances - 1 > 65535:
                yield at(w, f"ports/{pname}/host",
                         f"{w.instances} instances need host ports {port.host}.."
                         f"{port.host + w.instances - 1}, past 65535; lower host")
        for inst in service_instances(w, inv):
            for pname, port in w.ports.items():
                number = inst.host_port(pname)
                if number is None or number > 65535:
                    continue
                key = (inst.host.name, port.protocol, number)
                other = taken.setdefault(key, (w, pname))
                if other[0] is not w or other[1] != pname:
                    yield at(w, f"ports/{pname}/host",
                             f"host port {number} on {inst.host.name} is also used by "
                             f"{other[0].name} ({other[0].file}); instances use host, host+1, "
                             "...: pick ports that do not overlap")
                    break


def secrets_known(inv: m.Inventory, ws: list[m.Workload], store: SecretStore
                  ) -> Iterator[Problem]:
    for w in ws:
        for i, name in enumerate(w.secrets):
            secret = store.get(name)
            if secret is None:
                yield at(w, f"secrets/{i}", f"secret '{name}' is not in "
                         f"{store.describe_sources()}; add it there (never in the spec)")
            # A value render cannot write (line breaks, NUL, not UTF-8, a line over Docker's
            # env-file limit) is reported where it is read, by secrets.value_problem.
            if name in w.env:
                yield at(w, f"env/{name}", f"'{name}' is both in env and in secrets; keep it "
                                           "in secrets only")


def job_env_fits_env_file(inv: m.Inventory, ws: list[m.Workload], _: SecretStore
                          ) -> Iterator[Problem]:
    """A job's env reaches its container through its env file (read before each run's own,
    so `hostctl run --set` overrides it): each value must be one Docker env-file line."""
    for w in ws:
        if not w.is_job:
            continue
        for name, value in w.env.items():
            problem = value_problem(name, value)
            if problem is not None:
                yield at(w, f"env/{name}", f"{problem} (a job's env goes to its runs "
                                           "through an env file, like its secrets)")


def volume_targets(inv: m.Inventory, ws: list[m.Workload], _: SecretStore) -> Iterator[Problem]:
    for w in ws:
        seen: set[str] = set()
        for i, v in enumerate(w.volumes):
            if v.target in seen:
                yield at(w, f"volumes/{i}", f"'{v.target}' is mounted twice; mount it once")
            elif w.is_job and v.target.rstrip("/") == "/artifacts":
                # render.artifacts_mount: Docker refuses two mounts at one path.
                yield at(w, f"volumes/{i}", "every run has its project's artifacts volume at "
                                            "/artifacts; mount this one elsewhere")
            seen.add(v.target)


def reach_known_projects(inv: m.Inventory, ws: list[m.Workload], _: SecretStore
                         ) -> Iterator[Problem]:
    projects = {w.project for w in ws}
    for w in ws:
        for i, project in enumerate(w.reach):
            if project == w.project:
                yield at(w, f"reach/{i}", f"'{project}' is this service's own project; "
                                          "remove it (a project's services always meet)")
            elif project not in projects:
                yield at(w, f"reach/{i}", f"no spec has project '{project}'"
                         + did_you_mean(project, projects)
                         + f" (known: {', '.join(sorted(projects))})")


def schedules_valid(inv: m.Inventory, ws: list[m.Workload], _: SecretStore) -> Iterator[Problem]:
    for w in ws:
        if w.schedule is None:
            continue
        try:
            spec = parse_calendar(w.schedule)
        except CalendarError as exc:
            yield at(w, "schedule", f"'{w.schedule}' is not a systemd calendar expression: "
                                    f"{exc}; e.g. 'daily', 'Mon..Fri 02:00' or "
                                    "'*-*-* 03:30:00'")
            continue
        if never_fires(spec):
            # systemd loads such a timer and it never elapses: `systemd-analyze calendar`
            # says "Next elapse: never" (a date that does not exist, or one that has passed).
            yield at(w, "schedule", f"'{w.schedule}' never fires: no such date lies ahead "
                                    "(a day that does not exist, such as 02-30, or a time "
                                    "that has passed); give a date to come, or a repeating "
                                    "schedule such as 'daily'")


def images_pushable(inv: m.Inventory, ws: list[m.Workload], _: SecretStore
                    ) -> Iterator[Problem]:
    for w in ws:
        if (w.image_source or inv.image_source) != "push":
            continue
        where = w.file if w.image_source else inv.file
        why = digest_push_problem(w.image, where)
        if why is not None:
            yield at(w, "image", why)


def distinct_hosts(inv: m.Inventory, ws: list[m.Workload], _: SecretStore) -> Iterator[Problem]:
    seen: dict[tuple[str, int], str] = {}
    for host in inv.hosts.values():
        first = seen.setdefault((host.ssh_address, host.ssh.port), host.name)
        if first != host.name:
            yield Problem(inv.file, host.line, f"hosts/{host.name}",
                          f"same SSH address and port as host '{first}'; "
                          "each host must be a different machine")


def gateway_consistent(inv: m.Inventory, ws: list[m.Workload], store: SecretStore
                       ) -> Iterable[Problem]:
    """The gateway section against the hosts, the routes and the secrets."""
    return check_gateway(inv, ws, store)


def observability_consistent(inv: m.Inventory, ws: list[m.Workload], store: SecretStore
                             ) -> Iterable[Problem]:
    """The logging and metrics sections against the hosts and the specs."""
    return check_observability(inv, ws, store)


def projects_consistent(inv: m.Inventory, ws: list[m.Workload], store: SecretStore
                        ) -> Iterable[Problem]:
    """The projects section against the hosts and the specs."""
    return check_projects(inv, ws, store)


ALL_CHECKS: tuple[Check, ...] = (
    unique_names, known_profiles, placement_matches, gpus_available, service_gpus_fit,
    health_ports,
    route_ports, route_rate_limits,
    host_ports, secrets_known, job_env_fits_env_file, volume_targets, schedules_valid,
    distinct_hosts,
    reach_known_projects, images_pushable,
    gateway_consistent, observability_consistent, projects_consistent,
)


def run_all(inv: m.Inventory, ws: list[m.Workload], store: SecretStore) -> list[Problem]:
    """Every cross-check of the parsed site (what only rendering shows is hostctl.validate's)."""
    problems: list[Problem] = []
    for check in ALL_CHECKS:
        problems.extend(check(inv, ws, store))
    return problems
