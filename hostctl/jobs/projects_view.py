"""`hostctl projects`: per project, its quota against what it uses now, its GPU-hours and
their cost this month against its budget, its runs by state, and its owners. Pure: built
from the specs and what the hosts said."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hostctl.jobs import pricing
from hostctl.jobs import quota as Q
from hostctl.jobs.records import RunRecord
from hostctl.jobs.view import table
from hostctl.spec import model as m
from hostctl.spec.sections.projects import size_text

COLUMNS = ("PROJECT", "GPUS", "CPUS", "MEMORY", "RUNNING", "QUEUED", "WAITING",
           "GPU-HOURS", "BUDGET", "COST", "PRIORITY", "OWNERS")


@dataclass(frozen=True)
class ProjectUse:
    name: str
    limit: Q.Limit
    used: Q.Amount  # services and admitted runs
    services: Q.Amount
    running: int
    queued: int  # admitted, waiting for room on their host
    waiting: int  # held for the quota
    gpu_ms: int  # this month, runs and GPU services
    budget: float | None
    cost: float | None  # of those GPU-hours, each at its model's price (None: no prices)
    currency: str
    priority: str
    owners: tuple[str, ...]


def project_uses(site: m.Site, runs: Iterable[RunRecord], gpu_ms: Mapping[str, int],
                 by_model: Mapping[str, Mapping[str, int]] | None = None) -> list[ProjectUse]:
    """One row per project that has runs, services or a `projects:` entry; `by_model`: the
    GPU time per project by model, which the cost is priced by (jobs.pricing)."""
    inv = site.inventory
    prices = inv.metrics.prices if inv.metrics else None
    listed = inv.projects.projects
    runs = [r for r in runs if r.active]
    names = sorted({*listed, *(w.project for w in site.workloads), *(r.project for r in runs)})
    out = []
    for name in names:
        quota = listed.get(name)
        mine = [r for r in runs if r.project == name]
        services = Q.services_use(site, name)
        used = services
        for r in mine:
            if not r.hold:
                used = used + Q.Amount(r.cpus or Q.ONE_CPU, r.memory, r.need)
        out.append(ProjectUse(
            name=name, limit=Q.Limit.of(quota) if quota else Q.Limit(), used=used,
            services=services, running=sum(1 for r in mine if r.state in ("starting", "running")),
            queued=sum(1 for r in mine if r.state == "queued" and not r.hold),
            waiting=sum(1 for r in mine if r.state == "queued" and r.hold),
            gpu_ms=gpu_ms.get(name, 0), budget=quota.gpu_hours_per_month if quota else None,
            cost=None if prices is None else pricing.cost(
                0.0, {md: ms / 1000 for md, ms in (by_model or {}).get(name, {}).items()}
                or {"": gpu_ms.get(name, 0) / 1000}, prices.table()),
            currency=prices.currency if prices else "",
            priority=quota.priority if quota else "normal",
            owners=quota.owners if quota else ()))
    return out


def _of(used: int, limit: int | None, text: Any = str) -> str:
    return f"{text(used)}/{'-' if limit is None else text(limit)}"


def lines(rows: Iterable[ProjectUse]) -> list[str]:
    body = []
    for p in rows:
        body.append((
            p.name, _of(p.used.gpus, p.limit.gpus),
            _of(p.used.cpu, p.limit.cpu, lambda v: f"{v / 1000:g}"),
            _of(p.used.memory, p.limit.memory, lambda v: size_text(v) if v else "0"),
            str(p.running), str(p.queued), str(p.waiting),
            f"{Q.gpu_hours(p.gpu_ms):.1f}", "-" if p.budget is None else f"{p.budget:g}",
            "-" if p.cost is None else f"{p.cost:.2f} {p.currency}",
            p.priority, ", ".join(p.owners) or "anyone"))
    return table(body, COLUMNS)


def as_json(p: ProjectUse) -> dict[str, Any]:
    def amount(a: Q.Amount) -> dict[str, Any]:
        return {"gpus": a.gpus, "cpus": a.cpu / 1000, "memory": a.memory}

    return {
        "project": p.name,
        "quota": {"gpus": p.limit.gpus,
                  "cpus": None if p.limit.cpu is None else p.limit.cpu / 1000,
                  "memory": p.limit.memory},
        "used": amount(p.used), "services": amount(p.services),
        "runs": {"running": p.running, "queued": p.queued, "waiting_for_quota": p.waiting},
        "gpu_hours_this_month": round(Q.gpu_hours(p.gpu_ms), 3),
        "gpu_hours_per_month": p.budget,
        "cost_this_month": None if p.cost is None else round(p.cost, 2),
        "currency": p.currency or None, "priority": p.priority, "owners": list(p.owners),
    }
