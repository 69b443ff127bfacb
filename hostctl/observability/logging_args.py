"""The `docker run` logging options of a container, as argv words (pure, no I/O).

With a logging section, containers log through Docker's gelf driver to the site's Logstash,
non-blocking with a bounded buffer: a slow or absent Logstash drops messages rather than
stalling the service (and the container starts whether Logstash answers or not, over UDP).
`docker logs` keeps working through Docker's local cache. Without one, Docker keeps no log
(hostctl.render.docker_cmd.UNIT_JOURNAL: its journald driver would store every line twice).
Either way what a container prints reaches its unit's journal through the attached `docker
run` client, and that is where `hostctl logs` reads it.

Each message carries the container's hostctl labels (host, service, project, instance, spec
hash...), which the Logstash pipeline turns into normalised fields.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hostctl.render.docker_cmd import UNIT_JOURNAL
from hostctl.spec.sections.logging import ELASTICSEARCH_WORKLOAD, LOGSTASH_WORKLOAD, LoggingConfig

if TYPE_CHECKING:
    from hostctl.spec import model as m

LABEL = "io.hostctl"
# The labels docker_cmd puts on every container; gelf sends each as an `_io.hostctl.*` field.
# A label a container lacks (instance on a job, run on a service) is simply left out.
SHIPPED_LABELS = tuple(f"{LABEL}.{key}" for key in (
    "site", "host", "project", "workload", "kind", "instance", "run", "spec-hash"))


def gelf_address(cfg: LoggingConfig, inv: m.Inventory) -> str:
    """`udp://ADDRESS:PORT` of Logstash's GELF input, as dockerd on each host reaches it."""
    address = cfg.logstash.address or inv.hosts[cfg.host].address
    if ":" in address:  # an IPv6 address
        address = f"[{address}]"
    return f"{cfg.logstash.protocol}://{address}:{cfg.logstash.port}"


def gelf_args(address: str, buffer_size: int) -> list[str]:
    """The gelf driver's options: where, non-blocking, bounded, tagged and labelled."""
    opts = [
        f"gelf-address={address}",
        "mode=non-blocking",
        f"max-buffer-size={buffer_size}",
        "tag={{.Name}}",  # the container name: hostctl-<service>-<n>, hostctl-job-<job>-<run>
        f"labels={','.join(SHIPPED_LABELS)}",
    ]
    return ["--log-driver", "gelf", *(word for opt in opts for word in ("--log-opt", opt))]


def log_args(cfg: LoggingConfig | None, inv: m.Inventory, w: m.Workload) -> list[str]:
    """The logging options for workload `w`'s containers.

    Logstash and Elasticsearch themselves log to their units' journals only: shipping their
    own complaints to Logstash would feed them back in exactly when it struggles.
    """
    if cfg is None or w.name in (LOGSTASH_WORKLOAD, ELASTICSEARCH_WORKLOAD):
        return list(UNIT_JOURNAL)
    return gelf_args(gelf_address(cfg, inv), cfg.buffer_size)
