"""The state one rendering gathers while it walks the site.

The builder modules (services, pods, jobs, ingress, ...) each receive a `RenderContext` and
only add to it: manifests with their origins, report items for what has no Kubernetes
meaning, and problems for what the cluster would refuse. `render_manifests` sorts and checks
the result once the walk is over, so the builders never need to know about each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hostctl.errors import Problem
from hostctl.k8s import checks as kc
from hostctl.k8s.names import workload_labels
from hostctl.k8s.placement import pod_count
from hostctl.spec import model as m
from hostctl.spec.checks import at
from hostctl.spec.sections.gateway import GatewayConfig
from hostctl.spec.sections.k3s import K3sConfig, ingress_class


@dataclass(frozen=True, order=True)
class ReportItem:
    """A spec setting with no (or a different) Kubernetes meaning, located."""

    file: str
    line: int
    path: str
    message: str
    workload: str = field(default="", compare=False)  # "" for the inventory's settings

    def __str__(self) -> str:
        return str(Problem(self.file, self.line, self.path, self.message))


@dataclass
class RenderContext:
    """The site being rendered, its k3s settings, and everything rendered so far."""

    site: m.Site
    cfg: K3sConfig
    docs: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    origins: dict[tuple[str, str, str], kc.Origin] = field(default_factory=dict)
    report: list[ReportItem] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    _labels: dict[int, dict[str, str]] = field(default_factory=dict, repr=False)
    _pods: dict[int, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.inv = self.site.inventory
        # One ingress class for every route: each builder asks the same question the same way.
        self.ingress = ingress_class(self.cfg, self.inv)
        # The host gateway's settings, when the site has one: Kong plugins and consumers are
        # rendered from them so the cluster enforces what the hosts did.
        self.gw: GatewayConfig | None = self.inv.gateway

    def labels(self, w: m.Workload) -> dict[str, str]:
        """names.workload_labels, computed once per workload (the spec hash is not free)."""
        if id(w) not in self._labels:
            self._labels[id(w)] = workload_labels(self.inv.site, w)
        return dict(self._labels[id(w)])

    def pod_count(self, w: m.Workload) -> int:
        """placement.pod_count, computed once per workload (it walks every host)."""
        if id(w) not in self._pods:
            self._pods[id(w)] = pod_count(self.inv, w)
        return self._pods[id(w)]

    def add(self, doc: dict[str, Any], origin: kc.Origin) -> None:
        """Keep `doc` unless the same object (kind, namespace, name) is already kept; two
        different objects with one name are a problem, never one silently lost."""
        key = kc.manifest_key(doc)
        if key in self.docs:  # shared objects (a project's namespace, a claim): more owners
            old = self.origins[key]
            if self.docs[key] != doc:
                kind, ns, name = key
                self.problems.append(origin.problem(
                    f"the {kind} '{name}' (namespace {ns or '-'}) made from this is also made "
                    f"from {old.file}:{old.line} ({old.path}); rename one of them"))
                return
            self.origins[key] = kc.Origin(old.file, old.line, old.path,
                                          old.workloads | origin.workloads)
            return
        self.docs[key] = doc
        self.origins[key] = origin

    def note(self, w: m.Workload, path: str, message: str) -> None:
        """Report a setting of `w` (at key `path` of its spec) that did not carry over."""
        p = at(w, path, message)
        self.report.append(ReportItem(p.file, p.line, p.path, p.message, w.name))

    def note_inventory(self, key: str, message: str) -> None:
        """Report an inventory setting that did not carry over (located at its top key)."""
        self.report.append(ReportItem(self.inv.file, self.inv.lines.get(key.split("/")[0], 0),
                                      key, message))
