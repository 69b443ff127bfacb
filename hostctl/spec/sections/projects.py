"""The inventory's `projects:` section: per project a quota, a budget, a priority and owners.

`docs/inventory.yml` documents every key and is validated by the tests. A project not listed
has no limits; a site without the section has none at all (an empty ProjectsConfig). The
section mixes one setting (`ledger_host`) with project names, which never collide: a
project name has no '_'.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from hostctl.errors import Problem, Source
from hostctl.spec import model as m
from hostctl.spec import rules as s
from hostctl.spec.placement import eligible_hosts
from hostctl.spec.schema import (
    INVALID,
    Check,
    Context,
    Int,
    ListOf,
    Number,
    Record,
    Section,
    Size,
    Str,
    describe,
    did_you_mean,
    failed,
)
from hostctl.spec.secrets import SecretStore
from hostctl.spec.sections.logging import section_source
from hostctl.spec.yamlsource import Path

PRIORITIES = ("high", "normal", "low")
DEFAULT_PRIORITY = "normal"
LEDGER_HOST = "ledger_host"


@dataclass(frozen=True)
class ProjectQuota:
    """What one project may use at once across the fleet (None: no limit), its monthly
    GPU-hour budget, its default priority and who may submit (empty: anyone)."""

    gpus: int | None = None
    cpus: float | None = None
    memory: int | None = None  # bytes
    gpu_hours_per_month: float | None = None  # per calendar month, UTC
    priority: str = DEFAULT_PRIORITY
    owners: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProjectsConfig:
    ledger_host: str | None = None  # the host whose queue lock is the fleet's admission lock
    projects: dict[str, ProjectQuota] = field(default_factory=dict)
    file: str = ""
    lines: dict[str, int] = field(default_factory=dict)

    def source(self, path: str) -> Source:
        return section_source(self.file, self.lines, path)


# Owners are matched against HOSTCTL_USER or the local user name.
OWNER_PATTERN = r"[A-Za-z0-9_][A-Za-z0-9._@-]*"
OWNER_MAX = 64

_POSITIVE = Number(minimum=0, exclusive_minimum=True)

_QUOTA: Record[ProjectQuota] = Record(ProjectQuota, {
    "gpus": Int(minimum=1),
    "cpus": _POSITIVE,
    "memory": Size(),  # the profiles' sizes (512Mi, 32Gi, ...), at least 1 byte
    "gpu_hours_per_month": _POSITIVE,
    "priority": Str(choices=PRIORITIES),
    "owners": ListOf(Str(OWNER_PATTERN, "owners are user names: letters, digits, '.', '_', "
                                        "'@' and '-', not starting with '.', '@' or '-'",
                         max_len=OWNER_MAX), min_len=1),
})


class _Projects(Check[ProjectsConfig]):
    """`ledger_host: NAME` beside `PROJECT: {quota...}` entries."""

    expected = "a mapping"

    def __call__(self, value: Any, path: Path, ctx: Context) -> ProjectsConfig:
        if value is None:
            return ProjectsConfig()
        if not isinstance(value, dict):
            return ctx.error(path, f"expected a mapping, got {describe(value)}")
        bad = False
        ledger: str | None = None
        projects: dict[str, ProjectQuota] = {}
        for key, raw in value.items():
            where = (*path, key)
            if key == LEDGER_HOST:
                if raw is not None:
                    ledger = s.host_name(raw, where, ctx)
                    bad = bad or failed(ledger)
                continue
            name = _project_name(key, where, ctx)
            quota = INVALID if failed(name) else _QUOTA(raw, where, ctx)
            if failed(quota):
                bad = True
            else:
                projects[name] = quota
        if bad:
            return INVALID
        return ProjectsConfig(ledger_host=ledger, projects=dict(sorted(projects.items())))


def _project_name(key: Any, path: Path, ctx: Context) -> str:
    if isinstance(key, str) and "_" in key:
        return ctx.error(path, f"unknown key '{key}'" + did_you_mean(key, (LEDGER_HOST,))
                         + f" (known: {LEDGER_HOST}, or a project name: {s.NAME_HINT})")
    return s.name(key, path, ctx)


PROJECTS = Section(_Projects, empty_is_off=False)


# -- cross-checks ----------------------------------------------------------------------------

def check_projects(inv: m.Inventory, ws: list[m.Workload], _: SecretStore
                   ) -> Iterator[Problem]:
    """The section against the hosts and the specs: a known ledger host, only projects some
    spec has, and quotas that leave room for each run or instance of the project."""
    cfg: ProjectsConfig = inv.projects
    if cfg.ledger_host is not None and cfg.ledger_host not in inv.hosts:
        src = cfg.source(f"projects/{LEDGER_HOST}")
        yield Problem(src.file, src.line, src.path,
                      f"no host '{cfg.ledger_host}' in {inv.file}"
                      + did_you_mean(cfg.ledger_host, inv.hosts)
                      + f" (known: {', '.join(inv.hosts)})")
    used = {w.project for w in ws}
    for name, quota in cfg.projects.items():
        if name not in used:
            src = cfg.source(f"projects/{name}")
            yield Problem(src.file, src.line, src.path,
                          f"no spec has project '{name}'" + did_you_mean(name, used)
                          + f" (known: {', '.join(sorted(used)) or 'none'}); fix the name or "
                          "remove the entry")
            continue
        for w in sorted((w for w in ws if w.project == name), key=lambda w: w.name):
            yield from _too_big(cfg, name, quota, w, inv)
        yield from _services_over(cfg, name, quota, [w for w in ws if w.project == name], inv)


def asks(w: m.Workload, inv: m.Inventory) -> m.Resources:
    """What one run of a job, or one instance of a service, asks (its profile filled in)."""
    res = w.resources
    if res.profile is not None and res.profile in inv.profiles:
        p = inv.profiles[res.profile]
        return m.Resources(cpus=p.cpus, memory=p.memory, gpus=p.gpus, profile=res.profile)
    return res


def _too_big(cfg: ProjectsConfig, project: str, quota: ProjectQuota, w: m.Workload,
             inv: m.Inventory) -> Iterator[Problem]:
    res = asks(w, inv)
    each = "per run" if w.is_job else "per instance"
    where = f"{w.kind} {w.name} ({w.file}:{w.lines.get('resources', w.line)})"
    limits: tuple[tuple[str, Any, Any, str], ...] = (
        ("gpus", quota.gpus, res.gpus or None, " GPU(s)"),
        ("cpus", quota.cpus, res.cpus, " CPU(s)"),
        ("memory", quota.memory, res.memory, " of memory"),
    )
    for key, limit, need, unit in limits:
        if limit is None or need is None or need <= limit:
            continue
        src = cfg.source(f"projects/{project}/{key}")
        yield Problem(src.file, src.line, src.path,
                      f"is {_amount(key, limit)} but {where} asks for {_amount(key, need)}"
                      f"{unit} {each}: it could never start; raise the quota or lower its "
                      "resources")


def _services_over(cfg: ProjectsConfig, project: str, quota: ProjectQuota,
                   ws: list[m.Workload], inv: m.Inventory) -> Iterator[Problem]:
    """The project's services run all the time, every instance on every host they are
    placed on: together they must fit the quota (one instance too big is _too_big's)."""
    services = sorted((w for w in ws if not w.is_job), key=lambda w: w.name)
    names = ", ".join(w.name for w in services)
    for key, limit, unit in (("gpus", quota.gpus, " GPU(s)"), ("cpus", quota.cpus, " CPU(s)"),
                             ("memory", quota.memory, " of memory")):
        each = [(getattr(asks(w, inv), key) or 0,
                 len(eligible_hosts(w, inv)) * w.instances) for w in services]
        if limit is None or any(one > limit for one, _ in each):
            continue
        need = sum(one * n for one, n in each)
        if need <= limit:
            continue
        src = cfg.source(f"projects/{project}/{key}")
        yield Problem(src.file, src.line, src.path,
                      f"is {_amount(key, limit)} but the services of {project} ({names}) "
                      f"take {_amount(key, need)}{unit} together, every instance on every host "
                      "they are placed on: no run of the project could start; raise the "
                      "quota, or lower their resources or instances")


def _amount(key: str, value: float) -> str:
    if key == "memory":
        return size_text(int(value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def size_text(size: int) -> str:
    """Bytes as the inventory writes them: 32Gi, 512Mi, or a number of bytes."""
    for suffix, unit in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if size % unit == 0:
            return f"{size // unit}{suffix}"
    return f"{size} bytes"
