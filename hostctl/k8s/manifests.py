"""Site -> Kubernetes manifests, and a report of what the specs say that Kubernetes cannot.

Pure: no I/O. The result is a sorted list of plain dicts (apply order: namespaces first),
identical for identical input. Secret values stay `hostctl.secrets.Secret` objects inside
the dicts until `materialize` turns them into values (for the API server) or into
`<secret NAME>` (for files and people).

What maps to what (issue 7):
- a project -> a Namespace (`namespace_prefix` + project) with NetworkPolicies that admit
  only its own pods, the ingress controller (to routed ports) and `reach` peers, as the
  per-project Docker networks do on hosts;
- a service -> Deployment (replicas = instances x eligible hosts) + Service (named ports),
  env in a ConfigMap, secrets as references into a Secret, named volumes as claims,
  health as readiness and liveness probes, resources as requests = limits, GPUs as
  `nvidia.com/gpu` with `runtimeClassName: nvidia`;
- a route -> Ingress of the inventory's class: Kong's with KongPlugins (key-auth, jwt, acl,
  rate-limiting, request-size-limiting, cors: the same plugin configs the host gateway
  uses) and KongConsumers, or Traefik's with Middlewares;
- a job -> Job (shards: Indexed, completions = parallelism = shards, HOSTCTL_SHARD_INDEX
  from the completion index), or CronJob when scheduled.
Everything a spec says that has no Kubernetes meaning becomes a `ReportItem`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from hostctl import model as m
from hostctl.checks import at
from hostctl.docker_cmd import spec_hash
from hostctl.errors import ConfigError, Problem
from hostctl.gateway.config import GatewayConfig, route_port
from hostctl.k8s import checks as kc
from hostctl.k8s.config import (
    KONG,
    TRAEFIK,
    K3sConfig,
    ingress_class,
    ingress_namespace,
    k3s_config,
)
from hostctl.placement import eligible_hosts
from hostctl.secrets import Secret

LABEL = "io.hostctl"
MANAGED_BY = {"app.kubernetes.io/managed-by": "hostctl"}
SELECTOR_KEY = f"{LABEL}/workload"
SHARD_INDEX_PATH = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
GPU_RESOURCE = "nvidia.com/gpu"
GPU_RUNTIME_CLASS = "nvidia"
KONG_API = "configuration.konghq.com/v1"
TRAEFIK_API = "traefik.io/v1alpha1"
# Kong's default CORS methods (its cors plugin schema), for Traefik when a spec names none.
KONG_CORS_METHODS = ("GET", "HEAD", "PUT", "PATCH", "POST", "DELETE", "OPTIONS", "TRACE",
                     "CONNECT")
ISOLATION_POLICY = "hostctl-project-isolation"

# Apply order: what others refer to comes first.
KIND_ORDER = ("Namespace", "ConfigMap", "Secret", "PersistentVolumeClaim", "Service",
              "Deployment", "Job", "CronJob", "KongPlugin", "KongConsumer", "Middleware",
              "Ingress", "NetworkPolicy")


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
class Rendering:
    """The manifests (sorted, Secret values unrevealed), where each came from, and the
    report of what did not carry over."""

    manifests: list[dict[str, Any]]
    origins: dict[tuple[str, str, str], kc.Origin]
    report: list[ReportItem]
    ingress_class: str = TRAEFIK

    def select(self, names: Iterable[str]) -> Rendering:
        """Only what the named workloads need (their namespace and policies included)."""
        wanted = set(names)
        keep = [d for d in self.manifests
                if self.origins[kc.manifest_key(d)].workloads & wanted]
        keys = {kc.manifest_key(d) for d in keep}
        return Rendering(keep, {k: v for k, v in self.origins.items() if k in keys},
                         [r for r in self.report if not r.workload or r.workload in wanted],
                         self.ingress_class)


# -- entry points ---------------------------------------------------------------------------

def render_manifests(site: m.Site, cfg: K3sConfig | None = None) -> Rendering:
    """Every manifest for the site; ConfigError (every problem, located) when the specs hold
    something the cluster would refuse or cron cannot schedule."""
    problems: list[Problem] = []
    if cfg is None:
        cfg = k3s_config(site.inventory, problems)
    if problems:
        raise ConfigError(problems)
    b = _Builder(site, cfg)
    b.build()
    manifests = sorted(b.docs.values(), key=sort_key)
    problems = b.problems + kc.check_manifests(manifests, b.origins)
    if problems:
        raise ConfigError(problems)
    return Rendering(manifests, b.origins, sorted(set(b.report)), b.ingress)


def sort_key(doc: Mapping[str, Any]) -> tuple[int, str, str]:
    kind = str(doc["kind"])
    order = KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
    meta = doc["metadata"]
    return order, str(meta.get("namespace", "")), str(meta["name"])


def materialize(value: Any, reveal: bool) -> Any:
    """`value` with each Secret replaced by its value (`reveal`) or by `<secret NAME>`."""
    if isinstance(value, Secret):
        return value.reveal() if reveal else repr(value)
    if isinstance(value, dict):
        return {k: materialize(v, reveal) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [materialize(v, reveal) for v in value]
    return value


def dump(doc: Mapping[str, Any], reveal: bool = False) -> str:
    """One manifest as YAML (keys sorted, so the text is stable)."""
    return yaml.safe_dump(materialize(dict(doc), reveal), sort_keys=True,
                          default_flow_style=False, width=1000, allow_unicode=False)


def dump_all(docs: Sequence[Mapping[str, Any]], reveal: bool = False) -> str:
    return "".join(f"---\n{dump(d, reveal)}" for d in docs)


def file_name(doc: Mapping[str, Any]) -> str:
    """Where `render -o DIR` writes it: NAMESPACE/kind-name.yaml (cluster-wide: _cluster/)."""
    meta = doc["metadata"]
    folder = meta.get("namespace") or "_cluster"
    return f"{folder}/{str(doc['kind']).lower()}-{meta['name']}.yaml"


def files(r: Rendering, reveal: bool = False, site: str = "") -> dict[str, str]:
    """Every manifest as a file, plus the report, as {relative path: text}."""
    out: dict[str, str] = {}
    for doc in r.manifests:
        header = f"# Rendered by hostctl for site {site}; hostctl k8s apply owns it.\n"
        if doc["kind"] == "Secret" and not reveal:
            header += ("# Values redacted: `hostctl k8s apply` sends the real ones; render "
                       "--with-secrets writes them here.\n")
        out[file_name(doc)] = header + dump(doc, reveal)
    out["hostctl-report.txt"] = report_text(r.report)
    return out


def report_text(report: Sequence[ReportItem]) -> str:
    if not report:
        return "Everything in the specs carried over to Kubernetes.\n"
    head = (f"{len(report)} setting(s) have no Kubernetes meaning or changed meaning; "
            "nothing else was dropped:\n")
    return head + "".join(f"  {item}\n" for item in report)


# -- names ----------------------------------------------------------------------------------

def namespace_of(cfg: K3sConfig, project: str) -> str:
    return cfg.namespace_prefix + project


def env_config_map(w: m.Workload) -> str:
    return f"{w.name}-env"


def secret_name(w: m.Workload) -> str:
    return f"{w.name}-secrets"


# -- values ---------------------------------------------------------------------------------

def cpu_quantity(cpus: float) -> str:
    milli = max(1, round(cpus * 1000))
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def memory_quantity(size: int) -> str:
    for suffix, unit in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)


def escape_expansion(word: str) -> str:
    """Kubernetes expands `$(VAR)` in command and args and turns `$$` into `$`; Docker does
    neither. Doubling every `$` makes Kubernetes pass the word through unchanged."""
    return word.replace("$", "$$")


# -- the builder ----------------------------------------------------------------------------

@dataclass
class _Builder:
    site: m.Site
    cfg: K3sConfig
    docs: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    origins: dict[tuple[str, str, str], kc.Origin] = field(default_factory=dict)
    report: list[ReportItem] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.inv = self.site.inventory
        self.ingress = ingress_class(self.cfg, self.inv)
        self.gw: GatewayConfig | None = (self.inv.gateway if isinstance(
            self.inv.gateway, GatewayConfig) else None)

    # -- bookkeeping

    def add(self, doc: dict[str, Any], origin: kc.Origin) -> None:
        key = kc.manifest_key(doc)
        if key in self.docs:  # shared objects (a project's namespace, a claim): more owners
            old = self.origins[key]
            self.origins[key] = kc.Origin(old.file, old.line, old.path,
                                          old.workloads | origin.workloads)
            return
        self.docs[key] = doc
        self.origins[key] = origin

    def note(self, w: m.Workload, path: str, message: str) -> None:
        p = at(w, path, message)
        self.report.append(ReportItem(p.file, p.line, p.path, p.message, w.name))

    def note_inventory(self, key: str, message: str) -> None:
        self.report.append(ReportItem(self.inv.file, self.inv.lines.get(key.split("/")[0], 0),
                                      key, message))

    def meta(self, name: str, namespace: str | None, labels: Mapping[str, str],
             annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"name": name, "labels": dict(labels)}
        if namespace is not None:
            out["namespace"] = namespace
        if annotations:
            out["annotations"] = dict(annotations)
        return out

    def project_labels(self, project: str) -> dict[str, str]:
        return {**MANAGED_BY, f"{LABEL}/site": self.inv.site, f"{LABEL}/project": project}

    def workload_labels(self, w: m.Workload) -> dict[str, str]:
        return {**self.project_labels(w.project), SELECTOR_KEY: w.name,
                f"{LABEL}/kind": w.kind, f"{LABEL}/spec-hash": spec_hash(w),
                "app.kubernetes.io/name": w.name, "app.kubernetes.io/part-of": w.project}

    # -- the site

    def build(self) -> None:
        projects = sorted({w.project for w in self.site.workloads})
        for project in projects:
            members = frozenset(w.name for w in self.site.workloads if w.project == project)
            self.namespace(project, members)
        for w in sorted(self.site.workloads, key=lambda w: w.name):
            if w.is_job:
                self.job(w)
            else:
                self.service(w)
        self.consumers()
        self.inventory_notes()

    def namespace(self, project: str, members: frozenset[str]) -> None:
        ns = namespace_of(self.cfg, project)
        first = min((w for w in self.site.workloads if w.project == project),
                    key=lambda w: (w.file, w.line))
        origin = kc.Origin(first.file, first.lines.get("project", first.line), "project",
                           members)
        self.add({"apiVersion": "v1", "kind": "Namespace",
                  "metadata": self.meta(ns, None, self.project_labels(project))}, origin)
        self.add({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                  "metadata": self.meta(ISOLATION_POLICY, ns, self.project_labels(project)),
                  "spec": {"podSelector": {}, "policyTypes": ["Ingress"],
                           "ingress": [{"from": [{"podSelector": {}}]}]}}, origin)

    # -- services

    def service(self, w: m.Workload) -> None:
        ns = namespace_of(self.cfg, w.project)
        labels = self.workload_labels(w)
        origin = kc.origin_of(w)
        replicas = w.instances * len(eligible_hosts(w, self.inv))
        pod = self.pod(w, labels, restart="Always")
        self.add({"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": self.meta(w.name, ns, labels),
                  "spec": {"replicas": replicas, "selector": {"matchLabels": {
                      SELECTOR_KEY: w.name}}, "template": pod}}, origin)
        if w.ports:
            annotations = self.kong_service_annotations(w)
            self.add({"apiVersion": "v1", "kind": "Service",
                      "metadata": self.meta(w.name, ns, labels, annotations),
                      "spec": {"selector": {SELECTOR_KEY: w.name}, "ports": [
                          {"name": pname, "port": p.container, "targetPort": pname,
                           "protocol": p.protocol.upper()} for pname, p in w.ports.items()]}},
                     origin)
        for pname, p in w.ports.items():
            if p.host is not None:
                self.note(w, f"ports/{pname}/host", f"host port {p.host} has no meaning in the "
                          f"cluster: Service {w.name}.{ns} serves port {p.container} inside it"
                          + (" and the Ingress outside" if self.exposed(w) else ""))
        if w.restart != "always":
            self.note(w, "restart", f"restart: {w.restart} has no Deployment equivalent: "
                      "Kubernetes always restarts a service's containers")
        self.reach(w)
        if w.route is not None:
            self.route(w)

    def exposed(self, w: m.Workload) -> bool:
        """Whether the route gets an Ingress (Traefik cannot check auth: those stay closed)."""
        return w.route is not None and (self.ingress == KONG or w.route.auth == "none")

    def reach(self, w: m.Workload) -> None:
        """A service that joins another project's network can reach its pods and be reached
        by them (a Docker network is symmetric): a policy on each side."""
        ns = namespace_of(self.cfg, w.project)
        for i, project in enumerate(w.reach):
            other = namespace_of(self.cfg, project)
            origin = kc.origin_of(w, f"reach/{i}")
            self.add(self.policy(f"{w.name}-reach-from-{w.project}", other, w, {}, [
                {"namespaceSelector": _ns_selector(ns),
                 "podSelector": {"matchLabels": {SELECTOR_KEY: w.name}}}]), origin)
            self.add(self.policy(f"{w.name}-reached-from-{project}", ns, w,
                                 {SELECTOR_KEY: w.name},
                                 [{"namespaceSelector": _ns_selector(other)}]), origin)

    def policy(self, name: str, ns: str, w: m.Workload, pods: Mapping[str, str],
               peers: list[dict[str, Any]], ports: list[dict[str, Any]] | None = None
               ) -> dict[str, Any]:
        rule: dict[str, Any] = {"from": peers}
        if ports:
            rule["ports"] = ports
        return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": self.meta(name, ns, self.workload_labels(w)),
                "spec": {"podSelector": {"matchLabels": dict(pods)} if pods else {},
                         "policyTypes": ["Ingress"], "ingress": [rule]}}

    # -- pods

    def pod(self, w: m.Workload, labels: Mapping[str, str], restart: str) -> dict[str, Any]:
        container: dict[str, Any] = {"name": w.name, "image": w.image}
        if w.image_source == "push":
            container["imagePullPolicy"] = "IfNotPresent"
            self.note(w, "image", f"image_source push: the cluster pulls images itself; import "
                      f"{w.image} on every node (k3s ctr images import) or push it to a "
                      "registry the cluster can reach")
        if w.command:
            container["command"] = [escape_expansion(x) for x in w.command]
        if w.args:
            container["args"] = [escape_expansion(x) for x in w.args]
        if w.env:
            container["envFrom"] = [{"configMapRef": {"name": env_config_map(w)}}]
            self.add({"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": self.meta(env_config_map(w), namespace_of(
                          self.cfg, w.project), self.workload_labels(w)),
                      "data": dict(w.env)}, kc.origin_of(w, "env"))
        env = self.secret_env(w) + self.shard_env(w)
        if env:
            container["env"] = env
        if w.ports:
            container["ports"] = [{"name": pname, "containerPort": p.container,
                                   "protocol": p.protocol.upper()}
                                  for pname, p in w.ports.items()]
        resources = self.resources(w)
        if resources:
            container["resources"] = resources
        if w.health is not None:
            container.update(self.probes(w, w.health))
        volumes, mounts = self.volumes(w)
        if mounts:
            container["volumeMounts"] = mounts
        spec: dict[str, Any] = {
            "containers": [container],
            "restartPolicy": restart,
            # Containers on hosts get neither API credentials nor service-link variables.
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": self.seconds(w, "stop_timeout", w.stop_timeout),
        }
        if w.resources.gpus:
            spec["runtimeClassName"] = GPU_RUNTIME_CLASS
        if volumes:
            spec["volumes"] = volumes
        self.placement(w, spec)
        return {"metadata": {"labels": dict(labels)}, "spec": spec}

    def seconds(self, w: m.Workload, path: str, value: float, minimum: int = 1) -> int:
        whole = kc.whole_seconds(value, minimum)
        if abs(whole - value) > 1e-9:
            self.note(w, path, f"{value:g}s becomes {whole}s: Kubernetes counts whole seconds")
        return whole

    def secret_env(self, w: m.Workload) -> list[dict[str, Any]]:
        if not w.secrets:
            return []
        values = {}
        for name in w.secrets:
            value = self.site.secrets.get(name)
            if value is None:  # the loader refuses a missing secret; never send an empty one
                self.problems.append(at(w, "secrets", f"secret '{name}' has no value"))
                continue
            values[name] = value
        self.add({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                  "metadata": self.meta(secret_name(w), namespace_of(self.cfg, w.project),
                                        self.workload_labels(w)),
                  "stringData": values}, kc.origin_of(w, "secrets"))
        return [{"name": name, "valueFrom": {"secretKeyRef": {"name": secret_name(w),
                                                              "key": name}}}
                for name in w.secrets]

    def shard_env(self, w: m.Workload) -> list[dict[str, Any]]:
        if not w.is_job or w.shards <= 1:
            return []
        return [{"name": "HOSTCTL_SHARD_INDEX",
                 "valueFrom": {"fieldRef": {"fieldPath": SHARD_INDEX_PATH}}},
                {"name": "HOSTCTL_SHARD_COUNT", "value": str(w.shards)}]

    def resources(self, w: m.Workload) -> dict[str, Any]:
        """Docker's --cpus and --memory are hard limits with nothing reserved; requests equal
        to limits keep that promise on a busy node (Guaranteed QoS)."""
        r = w.resources
        limits: dict[str, str] = {}
        if r.cpus is not None:
            limits["cpu"] = cpu_quantity(r.cpus)
            if abs(r.cpus * 1000 - round(r.cpus * 1000)) > 1e-6 or r.cpus < 0.001:
                self.note(w, "resources", f"cpus {r.cpus:g} rounds to {limits['cpu']}: "
                          "Kubernetes counts CPU in thousandths")
        if r.memory is not None:
            limits["memory"] = memory_quantity(r.memory)
        if r.gpus:
            limits[GPU_RESOURCE] = str(r.gpus)
        return {"requests": dict(limits), "limits": limits} if limits else {}

    def probes(self, w: m.Workload, h: m.Health) -> dict[str, Any]:
        if h.http is not None:
            action: dict[str, Any] = {"httpGet": {"path": h.http.path, "port": h.http.port}}
        elif h.tcp is not None:
            action = {"tcpSocket": {"port": h.tcp.port}}
        else:
            action = {"exec": {"command": list(h.command or ())}}
        timing = {"periodSeconds": self.seconds(w, "health/interval", h.interval),
                  "timeoutSeconds": self.seconds(w, "health/timeout", h.timeout),
                  "failureThreshold": h.retries, "successThreshold": 1}
        liveness = {**action, **timing}
        if h.start_period:
            # Docker ignores failures during start_period; so does a liveness probe that
            # starts after it. Readiness starts at once, as Docker marks healthy on success.
            liveness["initialDelaySeconds"] = self.seconds(w, "health/start_period",
                                                           h.start_period, minimum=0)
        return {"readinessProbe": {**action, **timing}, "livenessProbe": liveness}

    def volumes(self, w: m.Workload) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        volumes, mounts = [], []
        pods = self.pods_sharing(w)
        for i, v in enumerate(w.volumes):
            name = f"volume-{i}"
            mount: dict[str, Any] = {"name": name, "mountPath": v.target}
            if v.read_only:
                mount["readOnly"] = True
            mounts.append(mount)
            if v.source.startswith("/"):
                volumes.append({"name": name, "hostPath": {"path": v.source}})
                self.note(w, f"volumes/{i}", f"host path {v.source} becomes a hostPath volume: "
                          "it is the node's directory, so data differs from node to node and "
                          "the directory must exist there")
                continue
            volumes.append({"name": name, "persistentVolumeClaim": {"claimName": v.source}})
            self.claim(w, i, v, pods)
        return volumes, mounts

    def pods_sharing(self, w: m.Workload) -> int:
        if w.is_job:
            return w.shards
        return w.instances * len(eligible_hosts(w, self.inv))

    def claim(self, w: m.Workload, i: int, v: m.Volume, pods: int) -> None:
        spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"],
                                "resources": {"requests": {
                                    "storage": memory_quantity(self.cfg.volume_size)}}}
        if self.cfg.storage_class:
            spec["storageClassName"] = self.cfg.storage_class
        ns = namespace_of(self.cfg, w.project)
        self.add({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                  "metadata": self.meta(v.source, ns, self.project_labels(w.project)),
                  "spec": spec}, kc.origin_of(w, f"volumes/{i}"))
        sharing = [o.name for o in self.site.workloads
                   if o.project == w.project and any(x.source == v.source for x in o.volumes)]
        note = (f"volume '{v.source}' becomes PersistentVolumeClaim {v.source} in {ns} "
                f"({memory_quantity(self.cfg.volume_size)}, ReadWriteOnce, storage class "
                f"{self.cfg.storage_class or 'the cluster default'}); Docker volumes have no "
                "size")
        if pods > 1 or len(sharing) > 1:
            note += (f"; it is shared by {pods} pod(s) of {', '.join(sharing)}, which must "
                     "then run on one node (or use a ReadWriteMany storage class)")
        self.note(w, f"volumes/{i}", note)

    def placement(self, w: m.Workload, spec: dict[str, Any]) -> None:
        p = w.placement
        if self.cfg.node_selector and p.labels:
            spec["nodeSelector"] = dict(p.labels)
        if p.hosts:
            self.note(w, "placement/hosts", f"hosts {', '.join(p.hosts)} are not carried: "
                      "Kubernetes chooses nodes"
                      + ("" if w.is_job else
                         f"; replicas = instances x eligible hosts = {self.pods_sharing(w)}"))
        if p.labels and not self.cfg.node_selector:
            wanted = ", ".join(f"{k}={v}" for k, v in p.labels.items())
            self.note(w, "placement/labels", f"labels {wanted} are not carried: Kubernetes "
                      "chooses nodes (set k3s/node_selector: true to require nodes labelled so)")

    # -- jobs

    def job(self, w: m.Workload) -> None:
        ns = namespace_of(self.cfg, w.project)
        labels = self.workload_labels(w)
        pod = self.pod(w, labels, restart="Never")
        if w.timeout is not None:
            # Per run, like RuntimeMaxSec on hosts: each retry is a new pod with its own time.
            pod["spec"]["activeDeadlineSeconds"] = self.seconds(w, "timeout", w.timeout)
        spec: dict[str, Any] = {"template": pod}
        if w.shards > 1:
            spec.update({"completionMode": "Indexed", "completions": w.shards,
                         "parallelism": w.shards, "backoffLimitPerIndex": w.retries})
        else:
            spec["backoffLimit"] = w.retries
        if w.schedule is None:
            self.add({"apiVersion": "batch/v1", "kind": "Job",
                      "metadata": self.meta(w.name, ns, labels), "spec": spec},
                     kc.origin_of(w))
            return
        cron = kc.cron_schedule(w)
        if isinstance(cron, Problem):
            self.problems.append(cron)
            return
        cron_spec: dict[str, Any] = {
            "schedule": cron.schedule,
            # A systemd timer does not start a run while the last one is still going.
            "concurrencyPolicy": "Forbid",
            "jobTemplate": {"metadata": {"labels": dict(labels)}, "spec": spec},
        }
        zone = cron.time_zone or self.cfg.time_zone
        if zone:
            cron_spec["timeZone"] = zone
        else:
            self.note(w, "schedule", f"'{w.schedule}' is in each host's local time; the "
                      "CronJob runs in the cluster controller's time zone unless k3s/time_zone "
                      "names one")
        self.add({"apiVersion": "batch/v1", "kind": "CronJob",
                  "metadata": self.meta(w.name, ns, labels), "spec": cron_spec},
                 kc.origin_of(w, "schedule"))

    # -- routes

    def route(self, w: m.Workload) -> None:
        r = w.route
        assert r is not None
        ns = namespace_of(self.cfg, w.project)
        port = route_port(w)
        assert port is not None
        annotations: dict[str, str] = {}
        if self.ingress == KONG:
            annotations = self.kong_route(w, r)
        elif not self.traefik_route(w, r, annotations):
            return
        rules = []
        paths = [{"path": p, "pathType": "Prefix", "backend": {"service": {
            "name": w.name, "port": {"name": port}}}} for p in (r.paths or ("/",))]
        for i, host in enumerate(r.hosts or (None,)):
            rule: dict[str, Any] = {"http": {"paths": paths}}
            if host is not None:
                if ":" in host:
                    self.problems.append(at(w, f"route/hosts/{i}", f"'{host}': an Ingress "
                                         "host cannot carry a port; remove ':PORT'"))
                rule["host"] = host
            rules.append(rule)
        self.add({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                  "metadata": self.meta(w.name, ns, self.workload_labels(w), annotations),
                  "spec": {"ingressClassName": self.ingress, "rules": rules}},
                 kc.origin_of(w, "route"))
        controller = ingress_namespace(self.cfg, self.inv)
        self.add(self.policy(f"{w.name}-from-ingress", ns, w, {SELECTOR_KEY: w.name},
                             [{"namespaceSelector": _ns_selector(controller)}],
                             [{"protocol": w.ports[port].protocol.upper(), "port": port}]),
                 kc.origin_of(w, "route"))

    def kong_route(self, w: m.Workload, r: m.Route) -> dict[str, str]:
        ns = namespace_of(self.cfg, w.project)
        names = []
        for plugin in kong_plugins(self.site, self.gw, w):
            name = f"{w.name}-{plugin['name']}"
            names.append(name)
            self.add({"apiVersion": KONG_API, "kind": "KongPlugin",
                      "metadata": self.meta(name, ns, self.workload_labels(w),
                                            {"kubernetes.io/ingress.class": KONG}),
                      "plugin": plugin["name"], "config": plugin["config"]},
                     kc.origin_of(w, _PLUGIN_SOURCE.get(plugin["name"], "route")))
        annotations = {"konghq.com/strip-path": str(r.strip_path).lower(),
                       "konghq.com/protocols": "http,https"}
        if names:
            annotations["konghq.com/plugins"] = ",".join(names)
        if r.methods:
            annotations["konghq.com/methods"] = ",".join(r.methods)
        return annotations

    def kong_service_annotations(self, w: m.Workload) -> dict[str, str] | None:
        r = w.route
        if r is None or self.ingress != KONG or r.timeouts is None:
            return None
        t = r.timeouts
        return {"konghq.com/connect-timeout": str(_ms(t.connect)),
                "konghq.com/read-timeout": str(_ms(t.read)),
                "konghq.com/write-timeout": str(_ms(t.write))}

    def traefik_route(self, w: m.Workload, r: m.Route, annotations: dict[str, str]) -> bool:
        """Traefik's Middlewares for what it can do; False when the route must stay closed."""
        if r.auth != "none":
            self.note(w, "route/auth", f"auth {r.auth} needs Kong (set k3s/ingress: kong); "
                      "Traefik cannot check it, so this route gets no Ingress and stays "
                      "closed rather than open")
            return False
        ns = namespace_of(self.cfg, w.project)
        middlewares: list[tuple[str, dict[str, Any], str]] = []
        if r.strip_path and r.paths:
            middlewares.append(("strip-prefix", {"stripPrefix": {"prefixes": list(r.paths)}},
                                "route/strip_path"))
        if r.rate_limit is not None:
            middlewares.append(("rate-limit", {"rateLimit": self.traefik_rate(w, r.rate_limit)},
                                "route/rate_limit"))
        if r.max_body is not None:
            middlewares.append(("max-body", {"buffering": {"maxRequestBodyBytes": r.max_body}},
                                "route/max_body"))
        if r.cors is not None:
            middlewares.append(("cors", {"headers": _traefik_cors(r.cors)}, "route/cors"))
        if r.methods:
            self.note(w, "route/methods", f"methods {', '.join(r.methods)} are not carried: a "
                      "Traefik Ingress routes every method (use k3s/ingress: kong)")
        if r.timeouts is not None:
            self.note(w, "route/timeouts", "timeouts are not carried: Traefik sets them for "
                      "all routes in its own configuration")
        names = []
        for suffix, spec, source in middlewares:
            name = f"{w.name}-{suffix}"
            names.append(f"{ns}-{name}@kubernetescrd")
            self.add({"apiVersion": TRAEFIK_API, "kind": "Middleware",
                      "metadata": self.meta(name, ns, self.workload_labels(w)), "spec": spec},
                     kc.origin_of(w, source))
        if names:
            annotations["traefik.ingress.kubernetes.io/router.middlewares"] = ",".join(names)
        return True

    def traefik_rate(self, w: m.Workload, limit: m.RateLimit) -> dict[str, Any]:
        """Traefik has one token bucket per middleware: the shortest window's limit."""
        given = [(p, getattr(limit, p)) for p in ("second", "minute", "hour", "day")
                 if getattr(limit, p) is not None]
        (period, count), rest = given[0], given[1:]
        for p, n in rest:
            self.note(w, f"route/rate_limit/{p}", f"{n} per {p} is not carried: Traefik "
                      f"enforces one limit, {count} per {period}")
        unit = {"second": "1s", "minute": "1m", "hour": "1h", "day": "24h"}[period]
        return {"average": count, "period": unit, "burst": count}

    # -- consumers (Kong only)

    def consumers(self) -> None:
        if self.gw is None or not self.gw.consumers:
            return
        if self.ingress != KONG:
            self.note_inventory("gateway/consumers", "consumers are not carried: Traefik has "
                                "none; routes with auth stay closed (set k3s/ingress: kong)")
            return
        projects = {w.project for w in self.site.workloads}
        for name, c in sorted(self.gw.consumers.items()):
            if c.project not in projects:
                continue
            self.consumer(name, c)

    def consumer(self, name: str, c: Any) -> None:
        gw = self.gw
        assert gw is not None
        ns = namespace_of(self.cfg, c.project)
        labels = self.project_labels(c.project)
        where = f"gateway/consumers/{name}"
        src = gw.source(where)
        callers = frozenset(w.name for w in self.site.services if w.route is not None and (
            w.project == c.project or c.project in w.route.allow_projects))
        origin = kc.Origin(src.file, src.line, where, callers)
        credentials: list[tuple[str, str, dict[str, Any]]] = [
            (f"{name}-acl", "acl", {"group": c.project})]
        credentials += [(f"{name}-key-auth-{i}", "key-auth", {"key": self.secret(s, origin)})
                        for i, s in enumerate(c.key_auth)]
        credentials += [(f"{name}-jwt-{i}", "jwt", {
            "key": j.key or name, "algorithm": j.algorithm,
            "secret": self.secret(j.secret, origin)}) for i, j in enumerate(c.jwt)]
        for secret, kind, data in credentials:
            self.add({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                      "metadata": self.meta(secret, ns, {**labels,
                                                         "konghq.com/credential": kind}),
                      "stringData": data}, origin)
        self.add({"apiVersion": KONG_API, "kind": "KongConsumer",
                  "metadata": self.meta(name, ns, labels, {"kubernetes.io/ingress.class": KONG}),
                  "username": name, "credentials": [s for s, _, _ in credentials]}, origin)

    def secret(self, name: str, origin: kc.Origin) -> Secret | str:
        value = self.site.secrets.get(name)
        if value is None:
            self.problems.append(origin.problem(f"secret '{name}' has no value"))
            return ""
        return value

    # -- the inventory

    def inventory_notes(self) -> None:
        if self.inv.logging:
            self.note_inventory("logging", "not carried: in the cluster, container output "
                                "goes to the node's container logs (kubectl logs)")
        if self.inv.metrics:
            self.note_inventory("metrics", "not carried: scrape the cluster's own metrics")
        if self.gw is not None and self.ingress == KONG:
            self.note_inventory("gateway/hosts", "the cluster's Kong (ingress class kong) "
                                "takes over: gateway hosts, image and ports are not carried")


_PLUGIN_SOURCE = {"key-auth": "route/auth", "jwt": "route/auth", "acl": "route/auth",
                  "rate-limiting": "route/rate_limit", "cors": "route/cors",
                  "request-size-limiting": "route/max_body"}


def kong_plugins(site: m.Site, gw: GatewayConfig | None, w: m.Workload
                 ) -> list[dict[str, Any]]:
    """The route's plugins with exactly the configs the host gateway gives them."""
    from hostctl.gateway.declarative import build_declarative

    config, _ = build_declarative(_routed_only(site, w), gw or GatewayConfig(hosts=()))
    services = config.get("services", [])
    plugins = services[0]["routes"][0].get("plugins", []) if services else []
    return [{"name": p["name"], "config": p["config"]} for p in plugins]


def _routed_only(site: m.Site, w: m.Workload) -> m.Site:
    return m.Site(inventory=site.inventory, workloads=(w,), secrets=site.secrets)


def _traefik_cors(cors: m.Cors) -> dict[str, Any]:
    exact = [o for o in cors.origins if o == "*" or ("://" in o and not _regexy(o))]
    regex = [o for o in cors.origins if o not in exact]
    out: dict[str, Any] = {"accessControlAllowMethods": list(cors.methods or KONG_CORS_METHODS),
                           "accessControlAllowCredentials": cors.credentials}
    if exact:
        out["accessControlAllowOriginList"] = exact
    if regex:
        out["accessControlAllowOriginListRegex"] = regex
    if cors.headers:
        out["accessControlAllowHeaders"] = list(cors.headers)
    if cors.exposed_headers:
        out["accessControlExposeHeaders"] = list(cors.exposed_headers)
    if cors.max_age is not None:
        out["accessControlMaxAge"] = int(cors.max_age)
    return out


def _regexy(origin: str) -> bool:
    return any(c in origin for c in "*+?()[]{}|^$\\")


def _ns_selector(namespace: str) -> dict[str, Any]:
    return {"matchLabels": {"kubernetes.io/metadata.name": namespace}}


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def content_hash(docs: Sequence[Mapping[str, Any]]) -> str:
    """A short hash of the rendered manifests without secret values (for summaries)."""
    return hashlib.sha256(dump_all(docs).encode()).hexdigest()[:12]
