"""The exporter as hosts get it: one zipapp (.pyz) holding the exporter and prometheus_client,
run by the host's own python3 (hosts have python3, but no pip and no registry), its
configuration for that host, and its systemd unit.

The bundle is built byte for byte the same from the same sources (fixed timestamps, sorted
entries), so an unchanged exporter is never re-sent or restarted by a deploy.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

from hostctl.observability.logging_args import gelf_address
from hostctl.render.files import MODE_PUBLIC, RenderedFile
from hostctl.spec import model as m
from hostctl.spec.hashing import spec_hash
from hostctl.spec.placement import instances_on, placed_on
from hostctl.spec.sections.logging import LoggingConfig
from hostctl.spec.sections.metrics import MetricsConfig, device_models

BUNDLE_PATH = "/usr/local/lib/hostctl/hostctl-exporter.pyz"
CONFIG_PATH = "/etc/hostctl/exporter/config.json"
UNIT_NAME = "hostctl-exporter.service"
UNIT_PATH = f"/etc/systemd/system/{UNIT_NAME}"
STATE_DIR = "/var/lib/hostctl"
AUDIT_LOG = f"{STATE_DIR}/audit.log"
WORKLOAD = "hostctl-exporter"  # what its files are owned by in a release manifest
PYTHON = "/usr/bin/python3"
MIN_PYTHON = (3, 9)  # prometheus_client's own minimum
AUDIT_INTERVAL = 5.0  # seconds between two looks at the audit log, without metrics

_HERE = Path(__file__).parent
_SHEBANG = b"#!/usr/bin/env python3\n"
_MODULES = ("exporter.py", "exporter_sources.py", "exporter_audit.py", "exporter_runs.py",
            "exporter_run_log.py")
# hostctl modules outside observability/ the exporter imports (standard library only
# themselves): the health rule it shares with `hostctl status`, the one `systemctl show`
# reader, the run records' parser (the run history's lines are the records'
# `ID/FIELD:VALUE` lines) and the pricing rule it shares with `hostctl runs`.
_SHARED = ("hosts/__init__.py", "hosts/health_verdict.py", "hosts/unit_show.py",
           "jobs/__init__.py", "jobs/records.py", "jobs/pricing.py")
# prometheus_client's integrations for other servers are never imported by the exporter.
_SKIP = ("twisted/", "django/", "aiohttp/", "__pycache__/")
_MAIN = f'''"""hostctl's metrics exporter: python3 hostctl-exporter.pyz --config FILE [--once]"""
import sys

if sys.version_info < {MIN_PYTHON!r}:
    sys.exit("hostctl-exporter needs python3 >= {'.'.join(map(str, MIN_PYTHON))}, "
             "this host has " + sys.version.split()[0])
from hostctl.observability.exporter import main

sys.exit(main())
'''


def _entries() -> list[tuple[str, bytes]]:
    # imported here: only a site with metrics builds the bundle (start-up speed)
    import prometheus_client

    files = [("__main__.py", _MAIN.encode()), ("hostctl/__init__.py", b""),
             ("hostctl/observability/__init__.py", b"")]
    files += [(f"hostctl/observability/{name}", (_HERE / name).read_bytes()) for name in _MODULES]
    files += [(f"hostctl/{name}", (_HERE.parent / name).read_bytes()) for name in _SHARED]
    package = Path(prometheus_client.__file__).parent
    for path in sorted(package.rglob("*")):
        rel = path.relative_to(package).as_posix()
        if path.is_file() and not any(rel.startswith(s) or f"/{s}" in rel for s in _SKIP) \
                and path.suffix in (".py", ".typed"):
            files.append((f"prometheus_client/{rel}", path.read_bytes()))
    version = getattr(prometheus_client, "__version__", None) or _dist_version()
    files.append(("BUNDLE.txt", f"prometheus_client {version}\n".encode()))
    return sorted(files)


def _dist_version() -> str:
    # imported here: only a bundle being built asks (start-up: it loads the email package)
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("prometheus_client")
    except PackageNotFoundError:
        return "unknown"


@functools.lru_cache(maxsize=1)
def build_bundle() -> bytes:
    """The .pyz: a shebang line, then a zip whose __main__.py runs the exporter.

    Kept between commands in the user's cache folder under a key made of what it is built
    from (each source file's name, size and modification time, as Python's own .pyc files
    are checked): importing prometheus_client and compressing ~90 KB is ~70 ms that every
    deploy and plan of a site with metrics would otherwise spend on the same bytes."""
    key = sources_key(_sources())
    cached = _cache_dir() / f"exporter-{key}.pyz"
    try:
        data = cached.read_bytes()
        if data.startswith(_SHEBANG) and zipfile.is_zipfile(io.BytesIO(data)):
            return data
    except OSError:
        pass
    data = build_fresh()
    try:  # a cache: a folder that cannot be written costs the next command time, nothing else
        cached.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = cached.with_name(f".{cached.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, cached)
    except OSError:
        pass
    return data


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "hostctl" / "bundles"


def _sources() -> list[Path]:
    """What the bundle is built from: the code that builds it (this module's own file), the
    files it takes in, prometheus_client's files (found without importing it)."""
    # imported here: only a site with metrics builds the bundle (start-up speed)
    import importlib.util

    spec = importlib.util.find_spec("prometheus_client")
    package = Path(spec.origin).parent if spec is not None and spec.origin else None
    return [Path(__file__), *(_HERE / n for n in _MODULES), *(_HERE.parent / n for n in _SHARED),
            *(sorted(package.rglob("*.py")) if package is not None else [])]


def sources_key(files: list[Path]) -> str:
    """`files` as a cache key: each one's path, size and modification time."""
    digest = hashlib.sha256(_MAIN.encode())
    for f in files:
        try:
            st = f.stat()
            digest.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{f}\0missing\n".encode())
    return digest.hexdigest()[:32]


def build_fresh() -> bytes:
    """The bundle built from its sources now (build_bundle keeps it between commands)."""
    buf = io.BytesIO()
    buf.write(_SHEBANG)
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in _entries():
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return buf.getvalue()


def audit_only_config(site: m.Site, host: m.Host, log: LoggingConfig) -> dict[str, Any]:
    """With logging but no metrics the same program runs to ship the audit records alone:
    no listener, no sampling."""
    return {"site": site.inventory.site, "host": host.name, "metrics": False,
            "state_dir": STATE_DIR, "sample_interval": AUDIT_INTERVAL,
            "audit": {"address": gelf_address(log, site.inventory), "file": AUDIT_LOG}}


def exporter_config(site: m.Site, host: m.Host, met: MetricsConfig,
                    log: LoggingConfig | None = None) -> dict[str, Any]:
    """What the exporter on `host` watches, and the prices it charges at."""
    inv = site.inventory
    services: dict[str, Any] = {}
    jobs: dict[str, Any] = {}
    for w in site.workloads:
        if not placed_on(w, host):
            continue
        if w.is_job:
            # report only when the spec has one: the configuration of a site without it
            # stays byte for byte what it was
            jobs[w.name] = {"project": w.project, "gpus": w.resources.gpus,
                            **({"report": list(w.report)} if w.report else {})}
            continue
        replicas = [inst.index for inst in instances_on(w, host)]
        services[w.name] = {"project": w.project, "image": w.image, "spec_hash": spec_hash(w),
                            "replicas": replicas, "gpus": w.resources.gpus}
    prices = None if met.prices is None else met.prices.table()
    conf: dict[str, Any] = {
        "site": inv.site, "host": host.name, "docker": host.docker, "gpus": host.gpus,
        "listen": met.exporter.listen, "port": met.exporter.port,
        "sample_interval": met.exporter.sample_interval, "state_dir": STATE_DIR,
        "prices": prices, "services": dict(sorted(services.items())),
        "jobs": dict(sorted(jobs.items())),
    }
    # Only on a host that names its GPUs' models: the configuration of any other host stays
    # byte for byte what it was.
    models = device_models([host]).get(host.name)
    if models:
        conf["gpu_models"] = models
    if log is not None:
        conf["audit"] = {"address": gelf_address(log, inv), "file": AUDIT_LOG}
    return conf


def exporter_unit(site: str, host: str, met: MetricsConfig | None) -> str:
    """The exporter's systemd unit: restarted by systemd, read-only except its state.
    Without metrics (`met` None) it only ships the audit records."""
    if met is None:
        what, description = "audit shipper", "hostctl audit shipper (audit records to Logstash)"
    else:
        what = "metrics exporter"
        description = f"hostctl metrics exporter (Prometheus, port {met.exporter.port})"
    return (
        f"# Rendered by hostctl for site {site}: the {what} of {host}.\n"
        "# Do not edit: hostctl deploy overwrites it.\n"
        "[Unit]\n"
        f"Description={description}\n"
        "After=network-online.target docker.service\n"
        "Wants=network-online.target\n"
        "\n"
        "[Service]\n"
        "Type=simple\n"
        f"ExecStart={PYTHON} {BUNDLE_PATH} --config {CONFIG_PATH}\n"
        "Restart=always\n"
        "RestartSec=5\n"
        # It talks to Docker (root-equivalent) and reads cgroup files; it writes only its
        # totals (StateDirectory= makes that one directory writable).
        "StateDirectory=hostctl/exporter\n"
        "NoNewPrivileges=yes\n"
        "ProtectSystem=strict\n"
        "ProtectHome=read-only\n"
        "PrivateTmp=yes\n"
        "\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )


def exporter_files(site: m.Site, host: m.Host, met: MetricsConfig | None,
                   log: LoggingConfig | None = None) -> list[RenderedFile]:
    """The bundle, its configuration and its unit, for `host`: with metrics, the exporter
    (which also ships the audit records with logging); with logging alone, the same program
    shipping the audit records; with neither, nothing."""
    if met is not None:
        data = exporter_config(site, host, met, log)
    elif log is not None:
        data = audit_only_config(site, host, log)
    else:
        return []
    conf = json.dumps(data, indent=2, sort_keys=True) + "\n"
    return [
        RenderedFile(BUNDLE_PATH, build_bundle(), MODE_PUBLIC, workload=WORKLOAD,
                     redacted_content=b"(hostctl-exporter.pyz: the exporter, built by hostctl)\n"),
        RenderedFile(CONFIG_PATH, conf.encode(), MODE_PUBLIC, workload=WORKLOAD),
        RenderedFile(UNIT_PATH, exporter_unit(site.inventory.site, host.name, met).encode(),
                     MODE_PUBLIC, workload=WORKLOAD),
    ]
