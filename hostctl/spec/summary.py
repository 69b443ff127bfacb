"""What a validated site contains, for `validate` output (text and JSON)."""

from __future__ import annotations

from typing import Any

from hostctl.spec import model as m
from hostctl.spec.hashing import spec_hash
from hostctl.spec.placement import eligible_hosts, service_instances


def site_summary(site: m.Site) -> dict[str, Any]:
    inv = site.inventory
    instances = sum(len(service_instances(w, inv)) for w in site.services)
    workloads = [
        {
            "kind": w.kind,
            "name": w.name,
            "project": w.project,
            "image": w.image,
            "file": w.file,
            "spec_hash": spec_hash(w),
            "hosts": [h.name for h in eligible_hosts(w, inv)],
            **({"instances_per_host": w.instances} if not w.is_job else {}),
            **({"schedule": w.schedule} if w.schedule else {}),
        }
        for w in site.workloads
    ]
    text = (f"site {inv.site}: {len(inv.hosts)} host(s), {len(site.services)} service(s) "
            f"({instances} instance(s)), {len(site.jobs)} job(s)")
    return {"site": inv.site, "hosts": list(inv.hosts), "workloads": workloads, "text": text}
