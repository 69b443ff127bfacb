"""Logstash and Elasticsearch as platform services: ordinary service Workloads (project
"platform", like hostctl.spec.platform's Kong), so they are rendered, pushed, health-gated and
rolled back like any service. Their files (the pipeline) go to the logging host.
"""

from __future__ import annotations

from dataclasses import replace

from hostctl.observability.pipeline import (
    CONTAINER_PIPELINE_DIR,
    ELASTICSEARCH_CONTAINER_PORT,
    PIPELINE_DIR,
    PIPELINE_PATH,
    render_pipeline,
)
from hostctl.spec import model as m
from hostctl.spec.sections.logging import (
    ELASTICSEARCH_WORKLOAD,
    LOGSTASH_WORKLOAD,
    PLATFORM_PROJECT,
    LoggingConfig,
)

LOGSTASH_API_PORT = 9600  # Logstash's monitoring API: health and event counts
GELF_CONTAINER_PORT = 12201


def _base(cfg: LoggingConfig, inv: m.Inventory, name: str, image: str) -> m.Workload:
    return m.Workload(
        kind=m.SERVICE, name=name, project=PLATFORM_PROJECT, image=image,
        image_source=cfg.image_source or inv.image_source,
        file=inv.file, source="(inventory logging section)",
        line=inv.lines.get("logging", 0),
        placement=m.Placement(hosts=(cfg.host,)),
        stop_timeout=30.0,
    )


def logstash_workload(cfg: LoggingConfig, inv: m.Inventory) -> m.Workload:
    heap = "-Xms256m -Xmx256m"
    return replace(
        _base(cfg, inv, LOGSTASH_WORKLOAD, cfg.images.logstash),
        env={
            "CONFIG_RELOAD_AUTOMATIC": "false",  # a changed pipeline restarts the unit
            "LS_JAVA_OPTS": heap,
            "XPACK_MONITORING_ENABLED": "false",  # the image's default points nowhere here
        },
        ports={
            "api": m.Port(LOGSTASH_API_PORT),
            "gelf": m.Port(GELF_CONTAINER_PORT, cfg.logstash.port, cfg.logstash.protocol),
        },
        volumes=(m.Volume(PIPELINE_DIR, CONTAINER_PIPELINE_DIR, read_only=True),),
        resources=m.Resources(memory=1024**3),
        # The API answers once the pipeline runs; a JVM takes its time to get there.
        health=m.Health(http=m.HttpCheck(port="api", path="/"), interval=5.0, timeout=3.0,
                        retries=24, start_period=20.0),
    )


def elasticsearch_workload(cfg: LoggingConfig, inv: m.Inventory) -> m.Workload:
    heap_mb = cfg.elasticsearch.heap // (1024 * 1024)
    return replace(
        _base(cfg, inv, ELASTICSEARCH_WORKLOAD, cfg.images.elasticsearch),
        env={
            # One node, no TLS and no users: the API is published on 127.0.0.1 only and
            # reached by Logstash on the platform network and by hostctl over SSH.
            "ES_JAVA_OPTS": f"-Xms{heap_mb}m -Xmx{heap_mb}m",
            "action.destructive_requires_name": "true",
            "cluster.name": f"hostctl-{inv.site}",
            "discovery.type": "single-node",
            "ingest.geoip.downloader.enabled": "false",  # no internet on many sites
            "xpack.security.enabled": "false",
        },
        ports={"api": m.Port(ELASTICSEARCH_CONTAINER_PORT, cfg.elasticsearch.port,
                             bind="127.0.0.1")},
        volumes=(m.Volume("elasticsearch-data", "/usr/share/elasticsearch/data"),),
        resources=m.Resources(memory=2 * cfg.elasticsearch.heap + 256 * 1024**2),
        health=m.Health(http=m.HttpCheck(
            port="api", path="/_cluster/health?wait_for_status=yellow&timeout=2s"),
            interval=5.0, timeout=4.0, retries=24, start_period=20.0),
    )


def logging_workloads(cfg: LoggingConfig | None, inv: m.Inventory) -> list[m.Workload]:
    """The platform services of the logging section (none without one)."""
    if cfg is None:
        return []
    out = [logstash_workload(cfg, inv)]
    if cfg.managed_elasticsearch:
        out.append(elasticsearch_workload(cfg, inv))
    return out


def pipeline_file(cfg: LoggingConfig, site: str) -> tuple[str, bytes, str]:
    """(path on the logging host, content, the workload it restarts)."""
    return PIPELINE_PATH, render_pipeline(cfg, site), LOGSTASH_WORKLOAD
