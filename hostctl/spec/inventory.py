"""The inventory's top-level keys: the rules' own (site, ssh, hosts, profiles, specs, secrets,
image_source) and each section's schema. Apart from `rules`, which the sections build on."""

from __future__ import annotations

from typing import Any

from hostctl.spec import rules as s
from hostctl.spec.schema import AnyMapping, Check, Field, ListOf, MapOf, Record, Str
from hostctl.spec.sections.gateway import GATEWAY
from hostctl.spec.sections.jobs import JOBS
from hostctl.spec.sections.k3s import K3S
from hostctl.spec.sections.logging import LOGGING
from hostctl.spec.sections.metrics import METRICS
from hostctl.spec.sections.projects import PROJECTS

INVENTORY_KEYS: dict[str, Field | Check[Any]] = {
    "site": Field(s.name, required=True),
    "ssh": Record(dict, {k: f for k, f in s.ssh.fields.items()}),
    "hosts": Field(MapOf(s.host_name, AnyMapping(), keep_order=True), required=True),
    "profiles": MapOf(Str(r"[A-Za-z0-9_.-]+", "profile names are letters, digits, '_', '.', '-'"),
                      s.profile),
    "specs": Field(ListOf(Str(), min_len=1, single_ok=True), required=True),
    "secrets": s.secrets_config,
    "image_source": Str(choices=("pull", "push")),
    "gateway": GATEWAY,
    "logging": LOGGING,
    "metrics": METRICS,
    "k3s": K3S,
    "jobs": JOBS,
    "projects": PROJECTS,
}
