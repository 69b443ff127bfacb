"""The Logstash pipeline of the logging section, rendered from `logging/pipeline.conf.j2`.

Pure: same configuration, same bytes. The file goes to the logging host and is mounted
read-only where the Logstash image reads its pipelines.
"""

from __future__ import annotations

import functools
from pathlib import Path

import jinja2

from hostctl.spec.sections.logging import ELASTICSEARCH_WORKLOAD, LoggingConfig

PIPELINE_DIR = "/etc/hostctl/logging/pipeline"  # on the logging host
PIPELINE_PATH = f"{PIPELINE_DIR}/hostctl.conf"
CONTAINER_PIPELINE_DIR = "/usr/share/logstash/pipeline"  # where the image reads pipelines
ELASTICSEARCH_CONTAINER_PORT = 9200


def templates_dir() -> Path:
    """Installed wheels carry logging/ inside the package; a checkout has it at the top."""
    packaged = Path(__file__).parent.parent / "_data" / "logging"
    return packaged if packaged.is_dir() else Path(__file__).parents[2] / "logging"


class UnsafeLogstashValue(ValueError):
    """A value that no Logstash string can hold safely (validate refuses it first)."""


def _unsafe(value: str) -> str | None:
    for c in value:
        if c in '"\\' or ord(c) < 0x20 or ord(c) == 0x7f:
            return c
    for pattern in ("${", "%{"):
        if pattern in value:
            return pattern
    return None


def logstash_string(value: object) -> str:
    """`value` as a double-quoted Logstash string that means `value` whatever
    `config.support_escapes` says. Logstash's grammar (logstash-core/lib/logstash/config/
    grammar.treetop, `double_quoted_string`) ends the string at a '"' not preceded by a
    backslash, and only with support_escapes on does it turn `\\"` or `\\\\` back into one
    character: no escape means the same under both settings, so a value holding a quote,
    backslash or control character is refused rather than escaped. `${VAR}` (Logstash
    substitutes environment and keystore values) and `%{field}` (event fields) are refused
    too: they would not be the value written."""
    text = str(value)
    bad = _unsafe(text)
    if bad is not None:
        raise UnsafeLogstashValue(f"{text!r} cannot be written into a Logstash pipeline "
                                  f"(it holds {bad!r})")
    return f'"{text}"'


def logstash_comment(value: object) -> str:
    """`value` inside a `#` comment line: anything but a line break."""
    text = str(value)
    if any(ord(c) < 0x20 or ord(c) == 0x7f for c in text):
        raise UnsafeLogstashValue(f"{text!r} cannot be written into a Logstash comment")
    return text


def logstash_number(value: object) -> str:
    """An integer as Logstash's `number` rule reads it."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise UnsafeLogstashValue(f"{value!r} is not an integer")
    return str(value)


@functools.lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        autoescape=False,  # Logstash syntax: every value goes through a filter below
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(ls_string=logstash_string, ls_comment=logstash_comment,
                       ls_number=logstash_number)
    return env


def elasticsearch_url(cfg: LoggingConfig) -> str:
    """Where Logstash sends events: the external url, or hostctl's own Elasticsearch by its
    container name on the platform network."""
    if cfg.elasticsearch.url is not None:
        return cfg.elasticsearch.url.rstrip("/")
    return f"http://hostctl-{ELASTICSEARCH_WORKLOAD}-1:{ELASTICSEARCH_CONTAINER_PORT}"


def data_stream_namespace(site: str) -> str:
    """A data stream's namespace may not contain '-' (it separates the name's parts)."""
    return site.replace("-", "_")


def render_pipeline(cfg: LoggingConfig, site: str) -> bytes:
    """The pipeline text for `site`."""
    data_stream = cfg.index == "data-stream"
    mode_text = ("one data stream per project" if data_stream
                 else "one index per project and day")
    text = _env().get_template("pipeline.conf.j2").render(
        site=site,
        mode_text=mode_text,
        port=cfg.logstash.port,
        udp=cfg.logstash.protocol == "udp",
        tcp=cfg.logstash.protocol == "tcp",
        data_stream=data_stream,
        namespace=data_stream_namespace(site),
        elasticsearch=elasticsearch_url(cfg),
        retention_days=cfg.retention_days,
    )
    return text.encode()

