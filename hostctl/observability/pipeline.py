"""The Logstash pipeline of the logging section, rendered from `logging/pipeline.conf.j2`.

Pure: same configuration, same bytes. The file goes to the logging host and is mounted
read-only where the Logstash image reads its pipelines.
"""

from __future__ import annotations

import functools
from pathlib import Path

import jinja2

from hostctl.observability.config import ELASTICSEARCH_WORKLOAD, LoggingConfig

PIPELINE_DIR = "/etc/hostctl/logging/pipeline"  # on the logging host
PIPELINE_PATH = f"{PIPELINE_DIR}/hostctl.conf"
CONTAINER_PIPELINE_DIR = "/usr/share/logstash/pipeline"  # where the image reads pipelines
ELASTICSEARCH_CONTAINER_PORT = 9200


def templates_dir() -> Path:
    """Installed wheels carry logging/ inside the package; a checkout has it at the top."""
    packaged = Path(__file__).parent.parent / "_data" / "logging"
    return packaged if packaged.is_dir() else Path(__file__).parents[2] / "logging"


@functools.lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        autoescape=False,  # Logstash syntax; every value below is validated or built here
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )


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
        udp=str(cfg.logstash.protocol == "udp").lower(),
        tcp=str(cfg.logstash.protocol == "tcp").lower(),
        data_stream=data_stream,
        namespace=data_stream_namespace(site),
        elasticsearch=elasticsearch_url(cfg),
        retention_days=cfg.retention_days,
    )
    return text.encode()

