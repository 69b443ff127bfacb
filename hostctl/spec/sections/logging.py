"""The inventory's `logging:` section: its rules and typed form.

`logging/logging.example.yml` documents every key and is validated by the tests. Like the
gateway section, an empty or absent section means "off": what containers print then goes to
their units' journals only.

The schema imports `hostctl.spec.rules` on first use only, so the rules can use `LOGGING`
for the inventory's key without an import cycle.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass, field
from typing import Any

from hostctl.errors import Source
from hostctl.spec import rules as s
from hostctl.spec.rules import HostAddress, address_problem
from hostctl.spec.schema import (
    INVALID,
    Check,
    Context,
    Field,
    Int,
    Record,
    Section,
    Size,
    Str,
    describe,
    failed,
)
from hostctl.spec.yamlsource import Path

# Pinned: a new Logstash or Elasticsearch is a change someone reviews, not a surprise.
DEFAULT_LOGSTASH_IMAGE = "docker.elastic.co/logstash/logstash:8.15.3"
DEFAULT_ELASTICSEARCH_IMAGE = "docker.elastic.co/elasticsearch/elasticsearch:8.15.3"
GELF_PORT = 12201
DEFAULT_BUFFER_SIZE = 1024 * 1024  # Docker's own default for max-buffer-size (1m)
INDEX_MODES = ("per-project", "data-stream")
# As hostctl.spec.platform names its services: project "platform", one workload per service.
PLATFORM_PROJECT = "platform"
LOGSTASH_WORKLOAD = "logging-logstash"
ELASTICSEARCH_WORKLOAD = "logging-elasticsearch"


def section_source(file: str, lines: dict[str, int], path: str) -> Source:
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
        return section_source(self.file, self.lines, path)


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
# Elasticsearch's JVM heap: -Xms/-Xmx, and twice it plus 256Mi is the container's
# --memory. Elastic advises at most half the host's memory and ~30Gi (compressed pointers).
HEAP_MAX = 64 * 2**30
# Docker's max-buffer-size: a ring of log messages per container, in dockerd's memory.
BUFFER_SIZE_MAX = 2**30


class ElasticsearchUrl(Check[str]):
    """URL_PATTERN, with its host an address as host addresses are (spec_schema's rule:
    dotted numbers are an IPv4 address or nothing; brackets hold an IPv6 address)."""

    expected = "a URL"
    _url = Str(URL_PATTERN, URL_HINT, max_len=URL_MAX)

    def __call__(self, value: Any, path: Path, ctx: Context) -> str:
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
        text: str = HostAddress()(value, path, ctx)
        if failed(text):
            return INVALID
        if "%" in text:
            return ctx.error(path, f"{describe(text)} {ZONE_HINT}: give the address without "
                                   "it, or a DNS name")
        return text


@functools.cache
def _logging_section() -> Record[LoggingConfig]:
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


LOGGING = Section(_logging_section)
