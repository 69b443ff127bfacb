"""The checks between the inventory's `logging:` and `metrics:` sections, its hosts, its
gateway and the specs (each section's own rules are in logging.py and metrics.py)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hostctl.errors import Problem, Source
from hostctl.spec.schema import (
    did_you_mean,
)

if TYPE_CHECKING:
    from hostctl.spec import model as m
from hostctl.spec.located import at, digest_push_problem
from hostctl.spec.placement import service_instances
from hostctl.spec.sections.logging import (
    ELASTICSEARCH_WORKLOAD,
    LOGSTASH_WORKLOAD,
    ZONE_HINT,
    LoggingConfig,
)
from hostctl.spec.sections.metrics import MetricsConfig


def check_observability(inv: m.Inventory, ws: list[m.Workload], store: Any = None
                        ) -> list[Problem]:
    """Every problem between the logging/metrics sections, the hosts and the specs."""
    problems: list[Problem] = []
    log, met = inv.logging, inv.metrics
    if log is not None:
        problems.extend(_logging_host_known(log, inv))
        problems.extend(_images_pushable(log, inv))
        problems.extend(_platform_names_free(log, ws))
    if met is not None:
        problems.extend(_prices_priced(met))
        problems.extend(_priced_models_declared(met, inv))
        problems.extend(_every_gpu_priced(met, inv))
        problems.extend(_timeout_within_interval(met))
    problems.extend(_platform_ports_free(inv, log, met, ws))
    return problems


def _logging_host_known(log: LoggingConfig, inv: m.Inventory) -> Iterator[Problem]:
    if log.host not in inv.hosts:
        yield log.source("logging/host").problem(
            f"no host '{log.host}' in {inv.file}" + did_you_mean(log.host, inv.hosts)
            + f" (known: {', '.join(inv.hosts)})")
    elif log.logstash.address is None and "%" in inv.hosts[log.host].address:
        yield log.source("logging/host").problem(
            f"containers send their logs to {log.host}'s address "
            f"'{inv.hosts[log.host].address}', which {ZONE_HINT}: set "
            "logging/logstash/address to one without it, or a DNS name")


def _images_pushable(log: LoggingConfig, inv: m.Inventory) -> Iterator[Problem]:
    if (log.image_source or inv.image_source) != "push":
        return
    images = [("logstash", log.images.logstash)]
    if log.managed_elasticsearch:
        images.append(("elasticsearch", log.images.elasticsearch))
    for key, image in images:
        why = digest_push_problem(image, inv.file)
        if why is not None:
            yield log.source(f"logging/images/{key}").problem(why)


def _platform_names_free(log: LoggingConfig, ws: list[m.Workload]) -> Iterator[Problem]:
    managed = [LOGSTASH_WORKLOAD] + ([ELASTICSEARCH_WORKLOAD] if log.managed_elasticsearch
                                     else [])
    for w in ws:
        if w.name in managed:
            yield at(w, "name", f"'{w.name}' is the name of a service hostctl runs for the "
                                f"logging section of the inventory; give this {w.kind} "
                                "another name")


def _prices_priced(met: MetricsConfig) -> Iterator[Problem]:
    p = met.prices
    if p is not None and p.cpu_hour is None and p.gpu_hour is None \
            and not p.gpu_hour_by_model:
        yield met.source("metrics/prices").problem(
            "names a currency but no price: add cpu_hour and/or gpu_hour, or remove prices")


def _declared_models(inv: m.Inventory) -> dict[str, list[str]]:
    """GPU model -> the hosts that declare devices of it, in inventory order."""
    out: dict[str, list[str]] = {}
    for h in inv.hosts.values():
        for model in h.gpu_models():
            if model:
                out.setdefault(model, []).append(h.name)
    return out


def _priced_models_declared(met: MetricsConfig, inv: m.Inventory) -> Iterator[Problem]:
    """A priced model must be one some host declares: a typo would price nothing."""
    if met.prices is None:
        return
    declared = _declared_models(inv)
    known = (f"declared: {', '.join(sorted(declared))}" if declared
             else "no host declares a GPU model")
    for model in met.prices.gpu_hour_by_model:
        if model not in declared:
            yield met.source(f"metrics/prices/gpu_hour_by_model/{model}").problem(
                f"no host declares GPUs of model '{model}'{did_you_mean(model, declared)} "
                f"({known}): fix the name, or declare the model under a host's gpus: "
                f"in {inv.file}")


def _every_gpu_priced(met: MetricsConfig, inv: m.Inventory) -> Iterator[Problem]:
    """With models priced and no gpu_hour, a GPU of no priced model would cost nothing: the
    project's cost would look lower than it is."""
    p = met.prices
    if p is None or not p.gpu_hour_by_model or p.gpu_hour is not None:
        return
    unpriced: dict[str, list[str]] = {}
    for h in inv.hosts.values():
        for model in h.gpu_models():
            if model not in p.gpu_hour_by_model:
                unpriced.setdefault(model, []).append(h.name)
    for model, hosts in unpriced.items():
        what = f"model '{model}'" if model else "no model"
        fix = f"add {model} to gpu_hour_by_model" if model else \
            "declare their models under the hosts' gpus:"
        yield met.source("metrics/prices/gpu_hour_by_model").problem(
            f"the GPUs of {what} on {', '.join(hosts)} have no price: set gpu_hour (the "
            f"price of a GPU of no listed model), or {fix}")


def _timeout_within_interval(met: MetricsConfig) -> Iterator[Problem]:
    prom = met.prometheus
    if prom.timeout > prom.scrape_interval:
        yield met.source("metrics/prometheus/scrape_timeout").problem(
            f"{prom.timeout:g}s is longer than scrape_interval "
            f"({prom.scrape_interval:g}s); Prometheus refuses that: make it shorter")


@dataclass(frozen=True)
class Listener:
    """A port a platform service of hostctl takes on a host."""

    host: str
    protocol: str
    port: int
    bind: str | None  # None: every address (as `docker run -p PORT:...` publishes)
    what: str
    path: str  # the inventory key that sets it
    source: Source | None = None  # where to report a clash at (None: not ours to report)
    written: bool = False  # the operator wrote the key (else it is the default)


def platform_listeners(inv: m.Inventory, log: LoggingConfig | None,
                       met: MetricsConfig | None) -> list[Listener]:
    """The ports the observability sections take: the exporter on every host, Logstash's
    GELF input and the managed Elasticsearch on the logging host."""
    out: list[Listener] = []
    if met is not None:
        path = "metrics/exporter/port"
        out += [Listener(host, "tcp", met.exporter.port, met.exporter.listen,
                         "hostctl's exporter", path, met.source(path), path in met.lines)
                for host in inv.hosts]
    if log is not None and log.host in inv.hosts:
        path = "logging/logstash/port"
        out.append(Listener(log.host, log.logstash.protocol, log.logstash.port, None,
                            "Logstash's GELF input", path, log.source(path),
                            path in log.lines))
        if log.managed_elasticsearch:
            path = "logging/elasticsearch/port"
            out.append(Listener(log.host, "tcp", log.elasticsearch.port, "127.0.0.1",
                                "hostctl's Elasticsearch", path, log.source(path),
                                path in log.lines))
    return out


def _gateway_listeners(inv: m.Inventory) -> list[Listener]:
    """Kong's ports: its own check (hostctl.spec.sections.gateway) compares them with the specs';
    here they only meet the observability ones."""
    gw = inv.gateway
    if gw is None or not gw.managed:
        return []
    ports = [("gateway/proxy/http", gw.proxy.http, None, "Kong's HTTP proxy"),
             ("gateway/proxy/https", gw.proxy.https, None, "Kong's HTTPS proxy"),
             ("gateway/admin_port", gw.admin_port, "127.0.0.1", "Kong's Admin API"),
             ("gateway/status_port", gw.status_port, "127.0.0.1", "Kong's status API")]
    return [Listener(host, "tcp", port, bind, what, path)
            for host in gw.hosts for path, port, bind, what in ports if port is not None]


_WILDCARDS = ("0.0.0.0", "::")


def _addresses_meet(a: str | None, b: str | None) -> bool:
    """Whether two binds of one port number on one host would clash."""
    if a is None or b is None:
        return True
    a, b = a.strip("[]"), b.strip("[]")
    if a == b:
        return True
    v6a, v6b = ":" in a, ":" in b
    if v6a != v6b:  # another family: only the dual-stack wildcard reaches it
        return "::" in (a, b)
    return a in _WILDCARDS or b in _WILDCARDS


def _clash(a: Listener, host: str, protocol: str, port: int, bind: str | None) -> bool:
    return (a.host, a.protocol, a.port) == (host, protocol, port) and _addresses_meet(
        a.bind, bind)


def _platform_ports_free(inv: m.Inventory, log: LoggingConfig | None,
                         met: MetricsConfig | None, ws: list[m.Workload]) -> Iterator[Problem]:
    """A service may not publish a port a platform service takes on the same host (docker
    would fail to start one of them), nor may two platform services share one."""
    ours = platform_listeners(inv, log, met)
    if not ours:
        return
    for w in ws:
        reported: set[tuple[str, str]] = set()
        for inst in service_instances(w, inv):
            for pname, port in w.ports.items():
                number = inst.host_port(pname)
                if number is None:
                    continue
                for p in ours:
                    if (pname, p.path) in reported or not _clash(
                            p, inst.host.name, port.protocol, number, port.bind):
                        continue
                    reported.add((pname, p.path))
                    yield at(w, f"ports/{pname}/host",
                             f"host port {number}/{port.protocol} on {inst.host.name} is "
                             f"taken by {p.what} ({p.path} in {inv.file}); pick another "
                             f"host port, or change {p.path}")
    # Defaults first, so a clash between two is reported at the key the operator wrote.
    ours.sort(key=lambda p: p.written)
    others = _gateway_listeners(inv)
    seen: set[tuple[str, str]] = set()
    for i, p in enumerate(ours):
        for q in ours[:i] + others:
            if q.path == p.path or (p.path, q.path) in seen or not _clash(
                    q, p.host, p.protocol, p.port, p.bind):
                continue
            seen.add((p.path, q.path))
            assert p.source is not None
            yield p.source.problem(f"port {p.port}/{p.protocol} on {p.host} is also taken by "
                                   f"{q.what} ({q.path}); give each its own port")
