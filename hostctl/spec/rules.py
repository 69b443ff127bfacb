"""The rules for workload specs (`kind: service` or `kind: job`) and for inventories."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from hostctl.gateway.spec_rules import CorsOrigin, RouteHost, RoutePath
from hostctl.spec import model as m
from hostctl.spec.schema import (
    INVALID,
    NUMBER_CEILING,
    Bool,
    ByShape,
    Check,
    Command,
    Context,
    Duration,
    EnvVars,
    Field,
    Int,
    ListOf,
    MapOf,
    Number,
    Record,
    Size,
    Str,
    TextRule,
    describe,
    failed,
)
from hostctl.spec.yamlsource import Path
from hostctl.systemd.quoting import argument_problem, program_problem

# Names end up in systemd unit names, container names, Docker network names and (later)
# Kubernetes object names, so they follow the strictest of those: an RFC 1123 label.
NAME_PATTERN = r"[a-z0-9]([a-z0-9-]*[a-z0-9])?"
NAME_MAX = 40
NAME_HINT = "use lowercase letters, digits and '-', starting and ending with a letter or digit"
HOST_NAME_MAX = 63

# The Docker reference grammar (distribution/reference), without the digest-only form.
IMAGE_PATTERN = (
    r"(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"(?::[0-9]+)?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?"
)
# Docker refuses a repository name longer than this, counted as it normalizes the name:
# `app` is docker.io/library/app, `team/app` is docker.io/team/app (distribution/reference).
IMAGE_NAME_MAX = 255


def image_problem(ref: str) -> str | None:
    """What Docker refuses in a reference IMAGE_PATTERN matches, or None. The pattern lets
    the first component have capitals as a registry does; Docker reads it as a registry only
    when it has a '.' or ':' or is `localhost`, and repository names are lowercase."""
    name = ref.partition("@")[0]
    colon = name.find(":", name.rfind("/") + 1)
    name = name[:colon] if colon >= 0 else name
    first, slash, _ = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        normalized = name
    else:
        if name != name.lower():
            return "the repository name must be lowercase (only a registry, such as " \
                   "Registry.example.org, may have capitals)"
        normalized = "docker.io/" + ("" if slash else "library/") + name
    if len(normalized) > IMAGE_NAME_MAX:
        return (f"the repository name is {len(normalized)} characters as Docker reads it "
                f"({normalized[:30]}...), and Docker takes at most {IMAGE_NAME_MAX}")
    return None


class ImageRef(Check[str]):
    """An image reference Docker takes: IMAGE_PATTERN, and image_problem's rules."""

    expected = "an image reference"

    def __init__(self, hint: str):
        self._pattern = Str(IMAGE_PATTERN, hint)

    def __call__(self, value: Any, path: Path, ctx: Context) -> str:
        text: str = self._pattern(value, path, ctx)
        if failed(text):
            return INVALID
        why = image_problem(text)
        return ctx.error(path, f"{_describe(text)} is not valid: {why}") if why else text


ENV_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
LABEL_KEY = r"[a-zA-Z0-9]([a-zA-Z0-9._/-]*[a-zA-Z0-9])?"
LABEL_VALUE = r"[a-zA-Z0-9._-]{0,63}"

name = Str(NAME_PATTERN, NAME_HINT, max_len=NAME_MAX)
host_name = Str(NAME_PATTERN, NAME_HINT, max_len=HOST_NAME_MAX)
labels = MapOf(
    Str(LABEL_KEY, "label keys are letters, digits, '.', '_', '-' and '/'"),
    Str(LABEL_VALUE, "label values are up to 63 letters, digits, '.', '_' or '-'",
        coerce_numbers=True),
)
port_number = Int(1, 65535)

# The longest each duration may be (docs/service.yml, job.yml, inventory.yml say so): far
# beyond any sensible value, and well inside what reads them (Go's time.Duration for Docker's
# --health-* flags, systemd's TimeoutStopSec= and RuntimeMaxSec=, the probe's shell
# arithmetic), so a typo such as `12000d` is refused instead of failing later.
HEALTH_MAX = 86400.0  # 1d: health interval, timeout and start_period
STOP_TIMEOUT_MAX = 3600.0  # 1h: `docker stop -t`, and systemd's TimeoutStopSec= past it
JOB_TIMEOUT_MAX = 365 * 86400.0  # 365d: a job run's RuntimeMaxSec=
CONNECT_TIMEOUT_MAX = 600.0  # 10m: SSH connection attempts
PERSIST_MAX = 3600.0  # 1h: an SSH connection kept open for the next command
# Kong's `timeout` typedef: whole milliseconds, 0..2^31-2 (about 24.8 days); 24d is inside.
ROUTE_TIMEOUT_MAX = 24 * 86400.0
# Kong's cors plugin sends max_age as `tostring(max_age)`: whole seconds only make a valid
# Access-Control-Max-Age, and browsers cap it anyway (Firefox at 1d, Chromium at 2h).
CORS_MAX_AGE_MAX = 86400.0


# A DNS name (RFC 1123): dot-separated labels of ASCII letters, digits and '-', neither
# starting nor ending with '-'. So no address can start with '-' and pass for an option.
_DNS_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?")
DNS_NAME_MAX = 253


def address_problem(value: str) -> str | None:
    """Why `value` is neither an IP address nor a DNS name, or None when it is one.

    Dotted numbers are an IPv4 address or nothing: `999.999.999.999` is no name either."""
    try:
        ipaddress.ip_address(value)
        return None
    except ValueError:
        pass
    if re.fullmatch(r"[0-9.]+", value):
        return "is not a valid IPv4 address (four numbers 0..255)"
    if len(value.rstrip(".")) > DNS_NAME_MAX or not _DNS_NAME.fullmatch(value):
        return ("is not an IP address or DNS name: give an address such as 10.0.0.11 or "
                "fd00::11, or a name such as app-1.example.org (letters, digits, '-' and "
                "'.', no leading '-')")
    return None


class HostAddress(TextRule):
    """An IP address (v4 or v6) or a DNS name, checked with the ipaddress module."""

    expected = "an address"

    def problem(self, text: str) -> str | None:
        return address_problem(text)


class BindAddress(TextRule):
    """Where Docker publishes a port: an IPv4 address, or an IPv6 one in brackets."""

    expected = "an IP address"

    def problem(self, text: str) -> str | None:
        try:
            if text.startswith("[") and text.endswith("]") and "%" not in text:
                ipaddress.IPv6Address(text[1:-1])
            else:
                ipaddress.IPv4Address(text)
        except ValueError:
            return ("is not valid: give an IP address such as 127.0.0.1, or an IPv6 address "
                    "in brackets such as [::1]")
        return None


class DockerPath(TextRule):
    """The docker client's path: every unit's ExecStart= runs it, so systemd's rule for a
    program path applies (systemd.quoting.program_problem, as render applies it)."""

    expected = "a path"

    def problem(self, text: str) -> str | None:
        why = argument_problem(text) or program_problem(text)
        return None if why is None else (
            f"{why}; give the absolute path of the docker client on the host, such as "
            "/usr/bin/docker")


class PortSpec(Check[m.Port]):
    """`http: 8080` (container port only) or `http: {container: 8080, host: 18080}`."""

    expected = "a port"
    _long = Record(m.Port, {
        "container": Field(port_number, required=True),
        "host": port_number,
        "protocol": Str(choices=("tcp", "udp")),
        "bind": BindAddress(),
    })

    def __call__(self, value: Any, path: Path, ctx: Context) -> m.Port:
        if isinstance(value, int) and not isinstance(value, bool):
            number: int = port_number(value, path, ctx)
            if failed(number):
                return INVALID
            return m.Port(container=number)
        if isinstance(value, dict):
            return self._long(value, path, ctx)
        return ctx.error(path, "expected a container port number or a mapping "
                               "{container: N, host: N}, got " + _describe(value))


class VolumeSpec(Check[m.Volume]):
    """`name:/path[:ro]` or `{source, target, read_only}`."""

    expected = "a volume"
    _long = Record(m.Volume, {
        # `docker run --volume SOURCE:TARGET[:ro]` splits on ':', so neither path has one.
        # Docker's volume names: [a-zA-Z0-9][a-zA-Z0-9_.-]+, so at least two characters.
        "source": Field(Str(r"(/[^:\x00-\x1f\x7f]*|[A-Za-z0-9][A-Za-z0-9_.-]+)",
                            "give an absolute host path or a volume name of two or more "
                            "characters (no ':' or control characters)"), required=True),
        "target": Field(Str(r"/[^:\x00-\x1f\x7f]*[^:/\x00-\x1f\x7f][^:\x00-\x1f\x7f]*",
                            "the path inside the container must be absolute, not '/', with "
                            "no ':' or control characters"), required=True),
        "read_only": Bool(),
    })

    def __call__(self, value: Any, path: Path, ctx: Context) -> m.Volume:
        if isinstance(value, str):
            parts = value.split(":")
            if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
                return ctx.error(path, f"'{value}' is not SOURCE:TARGET or SOURCE:TARGET:ro")
            value = {"source": parts[0], "target": parts[1], "read_only": parts[2:] == ["ro"]}
        return self._long(value, path, ctx)


def _describe(value: Any) -> str:
    return describe(value)


# Docker refuses fewer than 0.01 CPUs, and more precision than a billionth (NanoCPUs).
CPUS_MIN, CPUS_MAX = 0.01, 4096


class Cpus(Check[float]):
    """`--cpus`: 0.01 up to a sensible 4096 (Docker also refuses more than the host has),
    in steps of 0.000000001."""

    expected = "a number"

    def __call__(self, value: Any, path: Path, ctx: Context) -> float:
        cpus: float = Number(0, CPUS_MAX, exclusive_minimum=True)(value, path, ctx)
        if failed(cpus):
            return INVALID
        if cpus < CPUS_MIN:
            return ctx.error(path, f"must be at least {CPUS_MIN} (Docker's least), got {cpus:g}")
        if abs(round(cpus * 1e9) - cpus * 1e9) > 1e-6:
            return ctx.error(path, f"{cpus!r} is more precise than Docker takes: at most 9 "
                                   "decimals")
        return cpus


class CorsMaxAge(Check[float]):
    """How long browsers may cache a preflight answer: whole seconds, at most 1d."""

    expected = "a duration"
    _duration = Duration(maximum=CORS_MAX_AGE_MAX)

    def __call__(self, value: Any, path: Path, ctx: Context) -> float:
        seconds: float = self._duration(value, path, ctx)
        if failed(seconds):
            return INVALID
        if not seconds.is_integer():
            return ctx.error(path, f"{value} is not a whole number of seconds, and Kong sends "
                                   "it as Access-Control-Max-Age, which takes only those: "
                                   "round it")
        return seconds


GPU_MODEL = Str(r"[a-z0-9][a-z0-9.-]*", "GPU model names are lower-case letters, digits, "
                "'.' and '-', starting with a letter or digit (e.g. a100-80g, l4)", max_len=63)
GPU_MAX = 64


class GpuModels(Check[tuple[str, ...]]):
    """`gpu_model: l4` or `gpu_model: [a100-80g, h100]`: the acceptable models, in order."""

    expected = "a GPU model name or a list of them"

    def __call__(self, value: Any, path: Path, ctx: Context) -> tuple[str, ...]:
        models: tuple[str, ...] = ListOf(GPU_MODEL, min_len=1, single_ok=True)(value, path, ctx)
        if failed(models):
            return INVALID
        return tuple(dict.fromkeys(models))


class WithGpuModel(Check[Any]):
    """A record with `gpus` and `gpu_model`: a model asked without GPUs is a mistake."""

    def __init__(self, record: Record[Any]):
        self.record, self.expected = record, record.expected
        self.fields = record.fields

    def __call__(self, value: Any, path: Path, ctx: Context) -> Any:
        built = self.record(value, path, ctx)
        if not failed(built) and built.gpu_models and not built.gpus:
            return ctx.error((*path, "gpu_model"),
                             "asks for a GPU model but no GPUs; add gpus: N (how many of "
                             "them it needs) or remove gpu_model")
        return built


class HostGpus(Check[tuple[tuple[int, str], ...]]):
    """A host's `gpus:`: a count (devices 0..N-1 without a model), or a list of
    `{model: NAME, count: N}` (numbered in order) or `{model: NAME, devices: [0, 1]}`."""

    expected = "a number of GPUs or a list of {model, count} or {model, devices}"
    _count = Int(0, GPU_MAX)
    _entry: Record[dict[str, Any]] = Record(dict, {
        "model": Field(GPU_MODEL, required=True),
        "count": Int(1, GPU_MAX),
        "devices": ListOf(Int(0, GPU_MAX - 1), min_len=1),
    })

    def __call__(self, value: Any, path: Path, ctx: Context
                 ) -> tuple[tuple[int, str], ...]:
        if not isinstance(value, list):
            n: int = self._count(value, path, ctx)
            return INVALID if failed(n) else tuple((i, "") for i in range(n))
        entries = [self._entry(v, (*path, i), ctx) for i, v in enumerate(value)]
        if any(failed(e) for e in entries):
            return INVALID
        bad = False
        for i, e in enumerate(entries):
            if ("count" in e) == ("devices" in e):
                ctx.error((*path, i), "give either count: N or devices: [ids] for "
                                      f"{e['model']}, not " + ("both" if "count" in e
                                                               else "neither"))
                bad = True
        if bad:
            return INVALID
        if len({"count" in e for e in entries}) > 1:
            return ctx.error(path, "mixes entries with count and entries with devices; give "
                                   "every model its devices: [ids], or every model a count "
                                   "(devices are then numbered 0.. in order)")
        out: list[tuple[int, str]] = []
        where: dict[int, int] = {}
        for i, e in enumerate(entries):
            ids = e["devices"] if "devices" in e else range(len(out), len(out) + e["count"])
            for d in ids:
                if d in where:
                    return ctx.error((*path, i, "devices"),
                                     f"device {d} is listed already (gpus/{where[d]}); "
                                     "give each device id once")
                where[d] = i
                out.append((d, e["model"]))
        if len(out) > GPU_MAX:
            return ctx.error(path, f"declares {len(out)} GPUs; at most {GPU_MAX}")
        return tuple(sorted(out))


resources_mapping = WithGpuModel(Record(m.Resources, {
    "cpus": Cpus(),
    "memory": Size(minimum=6 * 2**20),  # Docker refuses less than 6 MiB
    "gpus": Int(0, 64),
    "gpu_models": Field(GpuModels(), key="gpu_model"),
}))


class ProfileRef(Check[m.Resources]):
    """`resources: gpu_medium`: a named profile, filled in from the inventory later."""

    _name = Str(r"[A-Za-z0-9_.-]+", "profile names are letters, digits, '_', '.', '-'")

    def __call__(self, value: Any, path: Path, ctx: Context) -> m.Resources:
        checked: str = self._name(value, path, ctx)
        if failed(checked):
            return INVALID
        return m.Resources(profile=checked)


resources = ByShape(
    "a profile name or a mapping {cpus, memory, gpus}",
    str=ProfileRef(),
    dict=resources_mapping,
)

health = Record(m.Health, {
    "http": Record(m.HttpCheck, {
        "port": Field(Str(), required=True),
        # Printable ASCII: the probe and the deploy gate put it in a URL (curl, wget).
        "path": Str(r"/[!-~]*", "the path must start with '/' and have no spaces, control "
                                "or non-ASCII characters (percent-encode them)"),
    }),
    "tcp": Record(m.TcpCheck, {"port": Field(Str(), required=True)}),
    "command": Command(),
    "interval": Duration(minimum=1, maximum=HEALTH_MAX),
    "timeout": Duration(minimum=0.1, maximum=HEALTH_MAX),
    "retries": Int(1, 100),
    # Docker refuses a start period under 1ms, other than none at all.
    "start_period": Duration(minimum=0.001, maximum=HEALTH_MAX, zero_or_minimum=True),
})

placement = Record(m.Placement, {
    "hosts": ListOf(host_name, min_len=1, single_ok=True),
    "labels": labels,
})

route = Record(m.Route, {
    "paths": Field(ListOf(RoutePath(), min_len=1, single_ok=True), key="path"),
    "hosts": ListOf(RouteHost(), single_ok=True),
    "methods": ListOf(Str(choices=("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE",
                                   "OPTIONS"))),
    "port": Str(),
    "strip_path": Bool(),
    "auth": Str(choices=("none", "key-auth", "jwt")),
    "rate_limit": Record(m.RateLimit, {
        "second": Int(1), "minute": Int(1), "hour": Int(1), "day": Int(1),
    }),
    "allow_projects": ListOf(name),
    # Kong's allowed_payload_size: an integer Lua holds exactly (schema.NUMBER_CEILING).
    "max_body": Size(minimum=1, maximum=NUMBER_CEILING),
    "cors": Record(m.Cors, {
        "origins": ListOf(CorsOrigin(), min_len=1, single_ok=True),
        "methods": ListOf(Str(choices=("GET", "HEAD", "PUT", "PATCH", "POST", "DELETE",
                                       "OPTIONS", "TRACE", "CONNECT"))),
        "headers": ListOf(Str(r"[A-Za-z0-9_-]+", "header names are letters, digits, _ and -")),
        "exposed_headers": ListOf(Str(r"[A-Za-z0-9_-]+",
                                      "header names are letters, digits, _ and -")),
        "credentials": Bool(),
        "max_age": CorsMaxAge(),
    }),
    "timeouts": Record(m.Timeouts, {
        "connect": Duration(minimum=0.001, maximum=ROUTE_TIMEOUT_MAX),
        "read": Duration(minimum=0.001, maximum=ROUTE_TIMEOUT_MAX),
        "write": Duration(minimum=0.001, maximum=ROUTE_TIMEOUT_MAX),
    }),
})

# A metric name as a run writes it to HOSTCTL_METRICS (the queue helper keeps only these):
# the exporter publishes the `report:` ones as label values, so they are bounded too.
METRIC_NAME = r"[A-Za-z_][A-Za-z0-9_.:/-]*"
METRIC_NAME_MAX = 64
REPORT_MAX = 20  # each is one gauge per job and experiment on every host the job runs on


class ReportedMetrics(Check[tuple[str, ...]]):
    """`report: [val_auc, loss]`: the metrics of a job's runs the exporter publishes (the
    last value of each run's summary), each named once, at most REPORT_MAX."""

    expected = "a list"
    _names = ListOf(Str(METRIC_NAME, "metric names start with a letter or '_', then letters, "
                                     "digits and '_', '.', ':', '/', '-'",
                        max_len=METRIC_NAME_MAX), single_ok=True)

    def __call__(self, value: Any, path: Path, ctx: Context) -> tuple[str, ...]:
        if not isinstance(value, (list, str)):
            return ctx.error(path, "expected a list of metric names such as [val_auc, loss], "
                                   f"got {_describe(value)}")
        names: tuple[str, ...] = self._names(value, path, ctx)
        if failed(names):
            return INVALID
        if len(names) > REPORT_MAX:
            return ctx.error(path, f"lists {len(names)} metrics; at most {REPORT_MAX}: keep "
                                   "the ones you watch in Prometheus (every run keeps all of "
                                   "its metrics anyway)")
        for i, metric in enumerate(names):
            if metric in names[:i]:
                return ctx.error((*path, i), f"'{metric}' is listed twice; list each metric "
                                             "once")
        return names


workload = Record(m.Workload, {
    "kind": Field(Str(choices=("service", "job")), required=True),
    "name": Field(name, required=True),
    "project": Field(name, required=True),
    "image": Field(ImageRef("give an image reference such as "
                            "registry.example.org/team/app:1.2.3"), required=True),
    "image_source": Str(choices=("pull", "push")),
    "command": Command(),
    "args": ListOf(Str(coerce_numbers=True)),
    "env": EnvVars(Str(ENV_NAME, "environment variable names are letters, digits and _"),
                   Str(coerce_numbers=True)),
    "secrets": ListOf(Str(ENV_NAME, "secret names are letters, digits and _")),
    "ports": MapOf(name, PortSpec()),
    "volumes": ListOf(VolumeSpec()),
    "resources": resources,
    "health": health,
    "placement": placement,
    "instances": Int(1, 64),
    "restart": Str(choices=("always", "on-failure", "never")),
    "route": route,
    "reach": ListOf(name),
    "stop_timeout": Duration(minimum=1, maximum=STOP_TIMEOUT_MAX),
    "timeout": Duration(minimum=1, maximum=JOB_TIMEOUT_MAX),
    "retries": Int(0, 100),
    "schedule": Str(),
    "shards": Int(1, 10000),
    "report": ReportedMetrics(),
})

# Keys that only make sense for one kind; using them on the other is an error with a hint.
SERVICE_ONLY = ("ports", "instances", "restart", "route", "health", "reach")
JOB_ONLY = ("timeout", "retries", "schedule", "shards", "report")
# Jobs may publish ports and have health checks? No: a job runs to completion and is not
# routed; keeping them out keeps the job unit simple and honest.

ssh = Record(m.SSHSettings, {
    "user": Str(r"[a-z_][a-z0-9_-]*", "give a Unix user name"),
    "port": port_number,
    "key": Str(),
    "host": HostAddress(),
    "connect_timeout": Duration(minimum=1, maximum=CONNECT_TIMEOUT_MAX),
    "known_hosts": Str(),
    "persist": Duration(minimum=1, maximum=PERSIST_MAX, zero_or_minimum=True),
})

profile = WithGpuModel(Record(m.Profile, {
    "cpus": Cpus(),
    "memory": Size(minimum=6 * 2**20),
    "gpus": Int(0, 64),
    "gpu_models": Field(GpuModels(), key="gpu_model"),
}))

secrets_config = Record(m.SecretsConfig, {
    "env_file": Str(),
    "env_prefix": Str(ENV_NAME, "the prefix is letters, digits and _"),
})


def host_record(host_name_: str) -> Record[m.Host]:
    """Hosts are keyed by name in the inventory; the name is passed into the record."""
    return Record(m.Host, {
        "address": Field(HostAddress(), required=True),
        "ssh": Record(dict, {  # merged with the inventory's ssh defaults afterwards
            "user": ssh.fields["user"], "port": ssh.fields["port"], "key": ssh.fields["key"],
            "host": ssh.fields["host"], "connect_timeout": ssh.fields["connect_timeout"],
            "known_hosts": ssh.fields["known_hosts"], "persist": ssh.fields["persist"],
        }),
        "labels": labels,
        "gpu_devices": Field(HostGpus(), key="gpus"),
        "gpu_mode": Str(choices=("nvidia", "env")),
        "docker": DockerPath(),
    }, extra={"name": host_name_})
