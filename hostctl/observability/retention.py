"""Apply the retention requests once Elasticsearch is healthy: hostctl's own through an SSH
tunnel to the logging host's loopback (its API is published there only), an external one
directly at its url. For deploy to call after the logging host deployed cleanly."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hostctl.observability.elasticsearch import Applied, ElasticsearchClient, retention_requests
from hostctl.spec.sections.logging import LoggingConfig

if TYPE_CHECKING:
    from hostctl.runner import Runner

HEALTHY_TIMEOUT = 180.0  # a fresh single node takes a while to elect itself


def apply_retention(cfg: LoggingConfig, site: str, runner: Runner | None,
                    healthy_timeout: float = HEALTHY_TIMEOUT) -> list[Applied]:
    """Wait (bounded) for a yellow or green cluster, then apply the policy and template."""
    requests = retention_requests(cfg, site)
    if cfg.elasticsearch.url is not None:
        client = ElasticsearchClient(cfg.elasticsearch.url)
        client.wait_healthy(healthy_timeout)
        return client.apply_all(requests)
    if runner is None:
        raise ValueError("hostctl's own Elasticsearch is reached through the logging host")
    with runner.forward_port(cfg.elasticsearch.port) as port:
        client = ElasticsearchClient(f"http://127.0.0.1:{port}")
        client.wait_healthy(healthy_timeout)
        return client.apply_all(requests)
