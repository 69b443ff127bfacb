"""Where hostctl keeps things on a host. One place, so scripts and parsers agree."""

from __future__ import annotations

import fnmatch

MARK = "@@"  # starts each line a host script reports on (`@@name rest`)
UNIT_DIR = "/etc/systemd/system"
ENV_DIR = "/etc/hostctl/env"
STATE_DIR = "/var/lib/hostctl"
RELEASES_DIR = f"{STATE_DIR}/releases"
CURRENT_LINK = f"{STATE_DIR}/current"
LOCK_DIR = f"{STATE_DIR}/lock"
AUDIT_LOG = f"{STATE_DIR}/audit.log"
MANIFEST = "manifest.json"
KEEP_RELEASES = 5
GATEWAY_FILE = "/etc/hostctl/gateway/kong.yml"  # Kong's declarative config (secrets inside)
GATEWAY_WORKLOAD = "gateway-kong"  # the platform service that runs Kong
EXPORTER_FILES = (  # hostctl.observability.exporter_bundle: the metrics exporter
    "/usr/local/lib/hostctl/hostctl-exporter.pyz",
    "/etc/hostctl/exporter/config.json",
    f"{UNIT_DIR}/hostctl-exporter.service",
)
EXPORTER_WORKLOAD = "hostctl-exporter"
PIPELINE_GLOB = "/etc/hostctl/logging/pipeline/*.conf"  # Logstash's, on the logging host
PIPELINE_WORKLOAD = "logging-logstash"
PROBE_FILES = (  # hostctl.render.probe: the continuous health probe, on hosts with services
    "/usr/local/lib/hostctl/probe.sh",
    "/etc/hostctl/probe/services.conf",
    f"{UNIT_DIR}/hostctl-probe@.service",
    f"{UNIT_DIR}/hostctl-probe.timer",
)
PROBE_WORKLOAD = "hostctl-probe"
HEALTH_DIR = f"{STATE_DIR}/health"  # the probe's <unit>.state files
HEALTH_LOG = f"{STATE_DIR}/health.log"  # a JSON line per restart by the probe
# One file per service handed to the cluster (`hostctl k8s handoff`), on each host that ran
# it: a JSON line saying when and by whom. Deploy reads them with the facts and leaves those
# services stopped, their routes pointing at the cluster, until `handoff --back` removes them.
CLUSTER_DIR = f"{STATE_DIR}/cluster"
# The job queue's host-side helper and the host's GPUs for it (hostctl.jobs.hostside), on
# every host with jobs or GPU services: deploy writes them, and so does any jobs command.
JOBS_HELPER = f"{STATE_DIR}/bin/hostctl-jobs"
GPU_CONF = f"{STATE_DIR}/gpu/host.conf"
JOBS_WORKLOAD = "hostctl-jobs"

# Globs of the files hostctl owns on a host; anything else is never touched or removed.
MANAGED_GLOBS = (
    f"{UNIT_DIR}/hostctl-*.service",
    f"{UNIT_DIR}/hostctl-*.timer",
    f"{ENV_DIR}/*.env",
    GATEWAY_FILE,
    *EXPORTER_FILES[:2],
    PIPELINE_GLOB,
    *PROBE_FILES[:2],
    JOBS_HELPER,
    GPU_CONF,
)
# Read back by hash only, like secrets, but because they are binary: never shown as a diff.
HASH_ONLY = (EXPORTER_FILES[0],)


def is_managed(path: str) -> bool:
    return any(fnmatch.fnmatchcase(path, g) for g in MANAGED_GLOBS)


def live_mode(path: str) -> str:
    """The mode of a managed file found on a host that no release records (written by
    `hostctl run`, or before hostctl's first release), so a rollback keeps it usable."""
    if is_secret_path(path):
        return "0600"
    return "0755" if path == JOBS_HELPER else "0644"


def is_secret_path(path: str) -> bool:
    """Files whose content must never leave the host: their hashes only are read back."""
    return path.startswith(ENV_DIR + "/") or path == GATEWAY_FILE or path in HASH_ONLY
