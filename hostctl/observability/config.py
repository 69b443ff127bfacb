"""The inventory's `logging:` and `metrics:` sections: their rules, typed forms and checks.

`logging/logging.example.yml` and `logging/metrics.example.yml` document every key and are
validated by the tests. Like the gateway section, an empty or absent section means "off":
containers then log to journald, and no exporter is deployed.

The schemas import `hostctl.spec.rules` on first use only, so spec_schema can use
`LOGGING` and `METRICS` for the inventory's keys without an import cycle.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hostctl.errors import Problem, Source
from hostctl.spec.schema import (
    INVALID,
    Check,
    Context,
    Duration,
    Field,
    Int,
    Number,
    Record,
    Section,
    Size,
    Str,
    did_you_mean,
    failed,
)
from hostctl.spec.yamlsource import Path

if TYPE_CHECKING:
    from hostctl.spec import model as m

# Pinned: a new Logstash or Elasticsearch is a change someone reviews, not a surprise.
DEFAULT_LOGSTASH_IMAGE = "docker.elastic.co/logstash/logstash:8.15.3"
DEFAULT_ELASTICSEARCH_IMAGE = "docker.elastic.co/elasticsearch/elasticsearch:8.15.3"
GELF_PORT = 12201
DEFAULT_BUFFER_SIZE = 1024 * 1024  # Docker's own default for max-buffer-size (1m)
INDEX_MODES = ("per-project", "data-stream")
DEFAULT_EXPORTER_PORT = 9477




def _source(file: str, lines: dict[str, int], path: str) -> Source:
    probe = path
    while probe and probe not in lines:
        probe = probe.rpartition("/")[0]
    return Source(file, lines.get(probe, 0), path)


# -- logging ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class LogstashSettings:
    port: int = GELF_PORT  # published on the logging host, every address
    protocol: str = "udp"
    address: str | None = None  # where containers send GELF; default: the logging host's address


@dataclass(frozen=True)
class ElasticsearchSettings:
    url: str | None = None  # an Elasticsearch hostctl does not run; None: run one on the host
    port: int = 9200  # the managed one's API, on the logging host's 127.0.0.1 only
    heap: int = 512 * 1024 * 1024


@dataclass(frozen=True)
class LoggingImages:
    logstash: str = DEFAULT_LOGSTASH_IMAGE
    elasticsearch: str = DEFAULT_ELASTICSEARCH_IMAGE


@dataclass(frozen=True)
class LoggingConfig:
    host: str  # the inventory host that runs Logstash (and Elasticsearch unless url is set)
    logstash: LogstashSettings = field(default_factory=LogstashSettings)
    elasticsearch: ElasticsearchSettings = field(default_factory=ElasticsearchSettings)
    images: LoggingImages = field(default_factory=LoggingImages)
    image_source: str | None = None  # None: the inventory's image_source
    retention_days: int = 14
    index: str = "per-project"
    buffer_size: int = DEFAULT_BUFFER_SIZE
    file: str = ""
    lines: dict[str, int] = field(default_factory=dict)  # "logging/host" -> line

    @property
    def managed_elasticsearch(self) -> bool:
        """Whether hostctl runs Elasticsearch itself (no external url given)."""
        return self.elasticsearch.url is None

    def source(self, path: str) -> Source:
        return _source(self.file, self.lines, path)


# -- metrics ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class ExporterSettings:
    port: int = DEFAULT_EXPORTER_PORT
    listen: str = "0.0.0.0"  # Prometheus scrapes the host's address
    sample_interval: float = 5.0  # how often containers are read (short jobs need it short)


@dataclass(frozen=True)
class Prices:
    """Prices per hour of one CPU and one GPU. Without them no cost series exist (not 0)."""

    currency: str
    cpu_hour: float | None = None
    gpu_hour: float | None = None


@dataclass(frozen=True)
class PrometheusSettings:
    scrape_interval: float = 15.0
    scrape_timeout: float | None = None  # None: 10s, or the interval when that is shorter

    @property
    def timeout(self) -> float:
        return self.scrape_timeout if self.scrape_timeout is not None else min(
            10.0, self.scrape_interval)


@dataclass(frozen=True)
class MetricsConfig:
    exporter: ExporterSettings = field(default_factory=ExporterSettings)
    prices: Prices | None = None
    prometheus: PrometheusSettings = field(default_factory=PrometheusSettings)
    file: str = ""
    lines: dict[str, int] = field(default_factory=dict)

    def source(self, path: str) -> Source:
        return _source(self.file, self.lines, path)


# -- the schemas -----------------------------------------------------------------------------

# The Elasticsearch URL is written into the Logstash pipeline (a double-quoted string, where
# Logstash's grammar ends the string at a '"' not preceded by '\\', and `${VAR}` and
# `%{field}` are substituted), and hostctl sends its requests there. So it is kept to what an
# Elasticsearch address needs: http(s), a DNS name, IPv4 or [IPv6] address, a port 1-65535,
# a path of unreserved characters and %XX; no credentials, query, quotes, backslashes, '$'.
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
_PORT = (r"(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}"
         r"|[1-9][0-9]{0,3})")
URL_PATTERN = (rf"https?://({_LABEL}(\.{_LABEL})*|\[[0-9A-Fa-f:.]+\])(:{_PORT})?"
               r"(/([A-Za-z0-9._~-]|%[0-9A-Fa-f]{2})*)*")
URL_HINT = ("give a URL such as http://es.example.org:9200 (http or https, a host name or "
            "address, a port, a path of letters, digits, '.', '_', '~', '-', '/' or %XX; "
            "no user, password, query or quotes)")
URL_MAX = 2048
# The longest each duration may be (logging/metrics.example.yml says so). Prometheus takes
# longer ones, but a series scraped less often than its staleness (5m) has gaps between
# scrapes, and an exporter that samples less often than that misses whole jobs.
SAMPLE_INTERVAL_MAX = 300.0  # 5m
SCRAPE_MAX = 3600.0  # 1h
# Elasticsearch's JVM heap: -Xms/-Xmx, and twice it plus 256Mi is the container's
# --memory. Elastic advises at most half the host's memory and ~30Gi (compressed pointers).
HEAP_MAX = 64 * 2**30
# Docker's max-buffer-size: a ring of log messages per container, in dockerd's memory.
BUFFER_SIZE_MAX = 2**30


class ExporterListen(Check[str]):
    """The address the exporter binds on every host: an IP address (the exporter binds it
    as given) that every host has: a wildcard or a loopback address."""

    expected = "an IP address"

    def __call__(self, value: Any, path: Path, ctx: Context) -> str:
        from hostctl.spec.schema import describe

        text: str = Str()(value, path, ctx)
        if failed(text):
            return INVALID
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            return ctx.error(path, f"{describe(text)} is not an IP address: give 0.0.0.0 "
                                   "(every IPv4 address), :: (every address) or 127.0.0.1 "
                                   "(the host only)")
        if not (address.is_unspecified or address.is_loopback):
            return ctx.error(path, f"{describe(text)} is one host's address, and the exporter "
                                   "binds this address on every host, where the others have "
                                   "no such address: give 0.0.0.0 or :: (every address), or "
                                   "127.0.0.1 (the host only)")
        return text


class ElasticsearchUrl(Check[str]):
    """URL_PATTERN, with its host an address as host addresses are (spec_schema's rule:
    dotted numbers are an IPv4 address or nothing; brackets hold an IPv6 address)."""

    expected = "a URL"
    _url = Str(URL_PATTERN, URL_HINT, max_len=URL_MAX)

    def __call__(self, value: Any, path: Path, ctx: Context) -> str:
        from hostctl.spec.rules import address_problem
        from hostctl.spec.schema import describe

        text: str = self._url(value, path, ctx)
        if failed(text):
            return INVALID
        host = text.split("://", 1)[1]
        if host.startswith("["):
            host = host[1:host.index("]")]
            try:
                ipaddress.IPv6Address(host)
                why = None
            except ValueError:
                why = "is not an IPv6 address"
        else:
            host = host.split("/", 1)[0].split(":", 1)[0]
            why = address_problem(host)
        if why is not None:
            return ctx.error(path, f"{describe(text)} is not valid: its host '{host}' {why}")
        return text


ZONE_HINT = ("has a zone ('%'), which Docker's gelf-address URL cannot hold (Docker refuses "
             "it when a container is created)")


class GelfAddress(Check[str]):
    """Where containers send GELF: a host address (spec_schema.HostAddress), without an
    IPv6 zone such as %eth0: dockerd parses `udp://[ADDRESS]:PORT` as a URL."""

    expected = "an address"

    def __call__(self, value: Any, path: Path, ctx: Context) -> str:
        from hostctl.spec.rules import HostAddress
        from hostctl.spec.schema import describe

        text: str = HostAddress()(value, path, ctx)
        if failed(text):
            return INVALID
        if "%" in text:
            return ctx.error(path, f"{describe(text)} {ZONE_HINT}: give the address without "
                                   "it, or a DNS name")
        return text


class ScrapeDuration(Check[float]):
    """A Prometheus duration: at least 1s, at most SCRAPE_MAX, in whole milliseconds (the
    finest unit Prometheus's duration syntax has; render writes it as `15s` or `1500ms`)."""

    expected = "a duration"
    _duration = Duration(minimum=1, maximum=SCRAPE_MAX)

    def __call__(self, value: Any, path: Path, ctx: Context) -> float:
        seconds: float = self._duration(value, path, ctx)
        if failed(seconds):
            return INVALID
        if abs(seconds * 1000 - round(seconds * 1000)) > 1e-6:
            return ctx.error(path, f"{value} is not a whole number of milliseconds, the "
                                   "finest unit Prometheus takes: round it, e.g. 1500ms")
        return seconds


@functools.cache
def _logging_section() -> Record[LoggingConfig]:
    from hostctl.spec import rules as s  # here, not at import: spec_schema imports this

    image = s.ImageRef("give a pinned image reference such as "
                       "docker.elastic.co/logstash/logstash:8.15.3")
    return Record(LoggingConfig, {
        "host": Field(s.host_name, required=True),
        "logstash": Record(LogstashSettings, {
            "port": s.port_number,
            "protocol": Str(choices=("udp", "tcp")),
            "address": GelfAddress(),
        }),
        "elasticsearch": Record(ElasticsearchSettings, {
            "url": ElasticsearchUrl(),
            "port": s.port_number,
            "heap": Size(minimum=256 * 2**20, maximum=HEAP_MAX),
        }),
        "images": Record(LoggingImages, {"logstash": image, "elasticsearch": image}),
        "image_source": Str(choices=("pull", "push")),
        "retention_days": Int(1, 3650),
        "index": Str(choices=INDEX_MODES),
        "buffer_size": Size(minimum=64 * 1024, maximum=BUFFER_SIZE_MAX),
    })


class _Price(Check[float]):
    """A price: a number, 0 or more. (schema.Number(minimum=...) fails on a value below
    the minimum: float(INVALID); see the report of issue 5.)"""

    expected = "a price"

    def __call__(self, value: Any, path: Path, ctx: Context) -> float:
        number = Number()(value, path, ctx)
        if number is INVALID:
            return INVALID
        if number < 0:
            return ctx.error(path, f"must be at least 0, got {value}")
        return number


@functools.cache
def _metrics_section() -> Record[MetricsConfig]:
    from hostctl.spec import rules as s

    price = _Price()
    return Record(MetricsConfig, {
        "exporter": Record(ExporterSettings, {
            "port": s.port_number,
            "listen": ExporterListen(),
            "sample_interval": Duration(minimum=1, maximum=SAMPLE_INTERVAL_MAX),
        }),
        "prices": Record(Prices, {
            "currency": Field(Str(r"[A-Z]{3}", "give an ISO 4217 code such as EUR or USD"),
                              required=True),
            "cpu_hour": price,
            "gpu_hour": price,
        }),
        "prometheus": Record(PrometheusSettings, {
            "scrape_interval": ScrapeDuration(),
            "scrape_timeout": ScrapeDuration(),
        }),
    })


LOGGING = Section(_logging_section)
METRICS = Section(_metrics_section)


# -- cross-checks ----------------------------------------------------------------------------

# As hostctl.spec.platform names its services: project "platform", one workload per service.
PLATFORM_PROJECT = "platform"
LOGSTASH_WORKLOAD = "logging-logstash"
ELASTICSEARCH_WORKLOAD = "logging-elasticsearch"


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
    from hostctl.spec.checks import digest_push_problem

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
    from hostctl.spec.checks import at

    managed = [LOGSTASH_WORKLOAD] + ([ELASTICSEARCH_WORKLOAD] if log.managed_elasticsearch
                                     else [])
    for w in ws:
        if w.name in managed:
            yield at(w, "name", f"'{w.name}' is the name of a service hostctl runs for the "
                                f"logging section of the inventory; give this {w.kind} "
                                "another name")


def _prices_priced(met: MetricsConfig) -> Iterator[Problem]:
    p = met.prices
    if p is not None and p.cpu_hour is None and p.gpu_hour is None:
        yield met.source("metrics/prices").problem(
            "names a currency but no price: add cpu_hour and/or gpu_hour, or remove prices")


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
    """Kong's ports: its own check (hostctl.gateway.config) compares them with the specs';
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
    from hostctl.spec.checks import at
    from hostctl.spec.placement import service_instances

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
