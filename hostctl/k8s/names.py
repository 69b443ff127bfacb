"""Names, labels and metadata that every rendered object shares.

The labels are how hostctl finds its own objects again in a cluster (managed-by, site,
project) and how a Service, Deployment or NetworkPolicy selects a workload's pods
(`SELECTOR_KEY`). Names derived from a workload live here so that the object that defines
something and the object that refers to it cannot disagree.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from hostctl.spec import model as m
from hostctl.spec.hashing import spec_hash
from hostctl.spec.sections.k3s import K3sConfig

LABEL = "io.hostctl"
MANAGED_BY = {"app.kubernetes.io/managed-by": "hostctl"}
SELECTOR_KEY = f"{LABEL}/workload"


def namespace_of(cfg: K3sConfig, project: str) -> str:
    return cfg.namespace_prefix + project


def env_config_map(w: m.Workload) -> str:
    return f"{w.name}-env"


def secret_name(w: m.Workload) -> str:
    return f"{w.name}-secrets"


# A consumer's name may hold characters object names may not ('_', '.', capitals): its
# objects get a name made of lowercase letters, digits and '-', kept short enough for the
# longest credential suffix (`-key-auth-NNNN`) to fit in a DNS subdomain (253).
CONSUMER_OBJECT_MAX = 200
_NOT_NAME = re.compile(r"[^a-z0-9]+")


def consumer_object_name(username: str) -> str:
    """The KongConsumer's object name (and its credential Secrets' prefix) for a consumer;
    the consumer keeps its exact `username`. A name that is valid as it is stays as it is;
    any other gets a short hash of the exact username, so two consumers never share one."""
    base = _NOT_NAME.sub("-", username.lower()).strip("-")
    if base == username and len(base) <= CONSUMER_OBJECT_MAX:
        return base
    digest = hashlib.sha256(username.encode()).hexdigest()[:10]
    return f"{base[:CONSUMER_OBJECT_MAX - 11]}-{digest}".lstrip("-")


def meta(name: str, namespace: str | None, labels: Mapping[str, str],
         annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
    """An object's metadata; `namespace` None for cluster-wide objects (a Namespace)."""
    out: dict[str, Any] = {"name": name, "labels": dict(labels)}
    if namespace is not None:
        out["namespace"] = namespace
    if annotations:
        out["annotations"] = dict(annotations)
    return out


def project_labels(site: str, project: str) -> dict[str, str]:
    """Labels for what a whole project shares (its namespace, claims, consumers)."""
    return {**MANAGED_BY, f"{LABEL}/site": site, f"{LABEL}/project": project}


def workload_labels(site: str, w: m.Workload) -> dict[str, str]:
    """Labels for one workload's objects; the spec hash shows which spec a pod runs."""
    return {**project_labels(site, w.project), SELECTOR_KEY: w.name,
            f"{LABEL}/kind": w.kind, f"{LABEL}/spec-hash": spec_hash(w),
            "app.kubernetes.io/name": w.name, "app.kubernetes.io/part-of": w.project}
