"""What a Kubernetes cluster would refuse in a site, refused by `hostctl validate` first.

Handing services to a cluster is the growth path of every site, so these run for sites
without a `k3s:` section too: a site that validates renders (`hostctl k8s render`), and the
API server accepts what it renders. Two layers:

- field rules: each spec (or inventory) value that lands in a Kubernetes field stricter
  than hostctl's own schema, checked at that value's line with how to fix it (the names
  and numbers are those of k8s.io/apimachinery/pkg/util/validation and of
  pkg/apis/core and networking validation, as in checks.py);
- the rendering itself, once every other check has passed: whatever the builders or
  checks.check_manifests still refuse is reported at the spec line that made the object
  (two objects with one name, a Secret over 1 MiB), or at the value itself where the
  builder checks it: a route's paths and hosts are checked as its Ingress is built
  (ingress.route), for every ingress class, and only once the gateway's own checks of
  the same values have passed, so one bad path gets one message.
"""

from __future__ import annotations

import functools
import zoneinfo
from collections.abc import Iterator, Sequence

from hostctl.errors import ConfigError, Problem
from hostctl.k8s import checks as kc
from hostctl.k8s.names import consumer_object_name
from hostctl.spec import model as m
from hostctl.spec.checks import at
from hostctl.spec.loader import resolve_workload
from hostctl.spec.secrets import SecretStore
from hostctl.spec.sections.k3s import K3sConfig
from hostctl.systemd.calendar import CalendarError, never_fires, parse_calendar


def kubernetes_problems(inv: m.Inventory, ws: Sequence[m.Workload], store: SecretStore,
                        others_found: bool) -> list[Problem]:
    """Every field rule's problem; when there are none and no other check found any
    (`others_found`), what rendering the site still refuses."""
    cfg = inv.k3s
    problems = [p for w in ws for p in workload_problems(w, cfg)]
    problems += inventory_problems(inv, cfg)
    if problems or others_found:
        return problems
    return rendering_problems(inv, ws, store, cfg)


def rendering_problems(inv: m.Inventory, ws: Sequence[m.Workload], store: SecretStore,
                       cfg: K3sConfig) -> list[Problem]:
    # imported here: keeps start-up fast for sites without k3s (the manifest builders)
    from hostctl.k8s.manifests import render_manifests

    site = m.Site(inventory=inv, workloads=tuple(resolve_workload(w, inv) for w in ws),
                  secrets=store)
    try:
        render_manifests(site, cfg)
    except ConfigError as exc:
        return list(exc.problems)
    return []


# -- a spec's values ------------------------------------------------------------------------

def workload_problems(w: m.Workload, cfg: K3sConfig) -> Iterator[Problem]:
    yield from _name(w)
    yield from _ports(w)
    yield from _env(w)
    for i, name in enumerate(w.secrets):
        if len(name) > kc.SUBDOMAIN_MAX:
            yield at(w, f"secrets/{i}", f"secret name is {len(name)} characters long; a "
                     f"Kubernetes Secret key holds at most {kc.SUBDOMAIN_MAX}: shorten it")
    yield from _volumes(w)
    if w.schedule is not None:
        yield from _schedule(w)
    if cfg.node_selector:
        yield from _node_selector(w)


def _name(w: m.Workload) -> Iterator[Problem]:
    if not w.is_job and w.ports and not kc.DNS1035_LABEL.fullmatch(w.name):
        yield at(w, "name", f"'{w.name}' must start with a letter: a service with ports "
                 "becomes a Kubernetes Service, whose name is an RFC 1035 label; rename "
                 f"it (e.g. 's-{w.name}')")


def _ports(w: m.Workload) -> Iterator[Problem]:
    seen: dict[tuple[int, str], str] = {}
    for pname, port in w.ports.items():
        if (msg := kc.port_name_problem(pname)) is not None:
            yield at(w, f"ports/{pname}", msg + "; rename it")
        first = seen.setdefault((port.container, port.protocol), pname)
        if first != pname:
            yield at(w, f"ports/{pname}", f"container port {port.container}/{port.protocol} "
                     f"is also port '{first}': a Kubernetes Service takes each port and "
                     "protocol once; keep one of them")


def _env(w: m.Workload) -> Iterator[Problem]:
    for key in w.env:
        if len(key) > kc.SUBDOMAIN_MAX:
            yield at(w, f"env/{key}", f"variable name is {len(key)} characters long; a "
                     f"Kubernetes ConfigMap key holds at most {kc.SUBDOMAIN_MAX}: shorten it")
    # The ConfigMap's 1 MiB can't be reached: schema.EnvVars keeps env under 786432 bytes
    # for the unit's one docker run line.


def _volumes(w: m.Workload) -> Iterator[Problem]:
    for i, v in enumerate(w.volumes):
        if v.source.startswith("/"):
            if ".." in v.source.split("/"):
                yield at(w, f"volumes/{i}", f"host path '{v.source}' contains '..', which a "
                         "Kubernetes hostPath volume refuses: write the path without it")
        elif (msg := kc.subdomain_problem(v.source, "volume")) is not None:
            yield at(w, f"volumes/{i}", msg + " (a named volume becomes a "
                     "PersistentVolumeClaim of that name); rename it")


def _schedule(w: m.Workload) -> Iterator[Problem]:
    assert w.schedule is not None
    try:
        spec = parse_calendar(w.schedule)
    except CalendarError:  # no calendar expression at all: schedules_valid reports it
        return
    if never_fires(spec):  # schedules_valid says so: one bad schedule, one message
        return
    cron = kc.cron_schedule(w)
    if isinstance(cron, Problem):
        yield cron
    elif cron.time_zone is not None and not time_zone_known(cron.time_zone):
        yield at(w, "schedule", f"'{cron.time_zone}' is not a time zone a Kubernetes "
                 "CronJob knows (IANA database); name one such as Europe/Berlin, or UTC")


def _node_selector(w: m.Workload) -> Iterator[Problem]:
    for key, value in w.placement.labels.items():
        msg = kc.label_key_problem(key) or kc.label_value_problem(key, value)
        if msg is not None:
            yield at(w, f"placement/labels/{key}", msg + " (k3s/node_selector makes it a "
                     "nodeSelector)")


def time_zone_known(name: str) -> bool:
    """Whether the IANA database (Go's, in the API server) has `name`; Python's copy stands
    in for it. Without any copy here, nothing is refused."""
    zones = _time_zones()
    return not zones or name in zones


@functools.cache
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


# -- the inventory --------------------------------------------------------------------------

def inventory_problems(inv: m.Inventory, cfg: K3sConfig) -> list[Problem]:
    problems = []
    if cfg.time_zone is not None and not time_zone_known(cfg.time_zone):
        problems.append(cfg.problem("time_zone", f"'{cfg.time_zone}' is not a time zone a "
                                    "Kubernetes CronJob knows (IANA database); name one "
                                    "such as Europe/Berlin, or Etc/UTC"))
    problems += _gpu_models(inv, cfg)
    gw = inv.gateway
    taken: dict[str, str] = {}
    for name in gw.consumers if gw is not None else {}:
        obj = consumer_object_name(name)
        first = taken.setdefault(obj, name)
        if gw is not None and first != name:
            problems.append(gw.source(f"gateway/consumers/{name}").problem(
                f"consumers '{first}' and '{name}' would both be the KongConsumer "
                f"'{obj}' in a cluster; rename one of them"))
    return problems


def _gpu_models(inv: m.Inventory, cfg: K3sConfig) -> Iterator[Problem]:
    """Each GPU model a host names becomes a Kueue ResourceFlavor `gpu-<model>` (a DNS
    subdomain) selecting nodes by the model's product label (hostctl.k8s.queues), and each
    model mapped under k3s/gpu_products must be one a host names."""
    named: dict[str, m.Host] = {}
    for h in inv.hosts.values():
        for _, model in h.gpu_devices:
            if model and model not in named:
                named[model] = h
    for model, h in named.items():
        if not kc.DNS1123_SUBDOMAIN.fullmatch(model):
            yield Problem(inv.file, h.line, f"hosts/{h.name}/gpus",
                          f"GPU model '{model}' cannot name a Kueue ResourceFlavor in a "
                          "cluster (gpu-<model>, a DNS name: each part between dots starts "
                          "and ends with a letter or digit); rename it, e.g. "
                          f"'{_suggested(model)}'")
    for model in cfg.gpu_products:
        if model not in named:
            known = ", ".join(sorted(named)) or "none"
            yield cfg.problem(f"gpu_products/{model}",
                              f"no host names GPU model '{model}' (the hosts' models: "
                              f"{known}); fix the name or remove it")


def _suggested(model: str) -> str:
    parts = [p.strip("-") for p in model.split(".")]
    return ".".join(p for p in parts if p) or "gpu"
