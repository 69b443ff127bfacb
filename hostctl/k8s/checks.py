"""What the API server refuses and schema validation does not catch, checked before anything
is sent: object names (RFC 1123 / RFC 1035), label keys and values, port names, a Job's
restartPolicy, CronJob schedules, Ingress paths and hosts, ConfigMap and Secret sizes. Each
problem points at the spec (or inventory) line that produced the object.

The rules follow k8s.io/apimachinery/pkg/util/validation (IsDNS1123Label,
IsDNS1123Subdomain, IsDNS1035Label, IsQualifiedName, IsValidLabelValue, IsValidPortName)
and the API server's own validation (pkg/apis/core and pkg/apis/networking validation:
Ingress rules and paths, the 1 MiB limit of a ConfigMap's or Secret's data).
"""

from __future__ import annotations

import functools
import ipaddress
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from hostctl.errors import Problem
from hostctl.spec import model as m
from hostctl.spec.checks import at
from hostctl.spec.secrets import Secret
from hostctl.systemd.calendar import (
    CalendarComponent,
    CalendarError,
    normalized,
    parse_calendar,
    to_cron,
)

DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
PORT_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+")
LABEL_MAX = 63
SUBDOMAIN_MAX = 253
PORT_NAME_MAX = 15
MAX_DATA_BYTES = 1024 * 1024  # a ConfigMap's or Secret's values together (api.MaxSecretSize)
CRONJOB_NAME_MAX = 52  # the controller appends an 11-character suffix for each Job it makes

WILDCARD_SUBDOMAIN = re.compile(r"\*\." + DNS1123_SUBDOMAIN.pattern)
# networking validation (validateHTTPIngressPath), for pathType Prefix.
INGRESS_PATH_NEVER = ("//", "/./", "/../", "%2f", "%2F")
INGRESS_PATH_NOT_LAST = ("/..", "/.")

# Kinds whose names must be DNS labels (the rest are DNS subdomains).
LABEL_NAMED = frozenset({"Namespace", "Job", "CronJob"})
JOB_RESTART_POLICIES = ("Never", "OnFailure")


@dataclass(frozen=True)
class Origin:
    """Where a rendered object came from, for messages: a spec (or inventory) file, the line
    and key path there, and the workloads it belongs to (for --only)."""

    file: str
    line: int
    path: str = "name"
    workloads: frozenset[str] = frozenset()

    def problem(self, message: str) -> Problem:
        return Problem(self.file, self.line, self.path, message)


def origin_of(w: m.Workload, path: str = "name") -> Origin:
    p = at(w, path, "")
    return Origin(p.file, p.line, path, frozenset({w.name}))


# -- names and labels -----------------------------------------------------------------------

def dns_label_problem(value: str, what: str, max_len: int = LABEL_MAX) -> str | None:
    if len(value) > max_len:
        return f"{what} '{value}' is {len(value)} characters long; Kubernetes allows {max_len}"
    if not DNS1123_LABEL.fullmatch(value):
        return (f"{what} '{value}' is not a valid Kubernetes name (RFC 1123 label): use "
                "lowercase letters, digits and '-', starting and ending with a letter or digit")
    return None


def subdomain_problem(value: str, what: str) -> str | None:
    if len(value) > SUBDOMAIN_MAX:
        return f"{what} '{value[:40]}...' is longer than {SUBDOMAIN_MAX} characters"
    if not DNS1123_SUBDOMAIN.fullmatch(value):
        return (f"{what} '{value}' is not a valid Kubernetes name (RFC 1123 subdomain): use "
                "lowercase letters, digits, '-' and '.'")
    return None


def name_problem(kind: str, name: str) -> str | None:
    what = {"PersistentVolumeClaim": "volume"}.get(kind, f"{kind} name")
    if kind == "Service":
        if len(name) > LABEL_MAX or not DNS1035_LABEL.fullmatch(name):
            return (f"{what} '{name}' is not a valid RFC 1035 label: Service names start with "
                    f"a letter, then lowercase letters, digits and '-', at most {LABEL_MAX}")
        return None
    if kind == "CronJob":
        return dns_label_problem(name, what, CRONJOB_NAME_MAX)
    if kind in LABEL_NAMED:
        return dns_label_problem(name, what)
    return subdomain_problem(name, what)


@functools.lru_cache(maxsize=4096)  # the same few keys on every object
def label_key_problem(key: str) -> str | None:
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or subdomain_problem(prefix, "label key prefix")):
        return f"label key '{key}': the prefix before '/' must be a DNS subdomain"
    if len(name) > LABEL_MAX or not LABEL_NAME.fullmatch(name):
        return (f"label key '{key}': the name part must be at most {LABEL_MAX} letters, digits, "
                "'-', '_' or '.', starting and ending with a letter or digit")
    return None


def label_value_problem(key: str, value: Any) -> str | None:
    if not isinstance(value, str):
        return f"label '{key}' must be a string, got {type(value).__name__}"
    return _label_value_problem(key, value)


@functools.lru_cache(maxsize=4096)  # the same few values on every object of a workload
def _label_value_problem(key: str, value: str) -> str | None:
    if len(value) > LABEL_MAX:
        return f"label '{key}' value is {len(value)} characters long; at most {LABEL_MAX}"
    if value and not LABEL_NAME.fullmatch(value):
        return (f"label '{key}' value '{value}' must be letters, digits, '-', '_' or '.', "
                "starting and ending with a letter or digit")
    return None


def port_name_problem(name: str) -> str | None:
    if (len(name) > PORT_NAME_MAX or not PORT_NAME.fullmatch(name) or "--" in name
            or not any(c.isalpha() for c in name)):
        return (f"port name '{name}' is not valid in Kubernetes (IANA service name): at most "
                f"{PORT_NAME_MAX} lowercase letters, digits and single '-', with a letter")
    return None


def ingress_path_problem(path: str) -> str | None:
    """What an Ingress refuses in a Prefix path (validateHTTPIngressPath), or None."""
    bad = ([f"contain '{s}'" for s in INGRESS_PATH_NEVER if s in path]
           + [f"end with '{s}'" for s in INGRESS_PATH_NOT_LAST if path.endswith(s)])
    if not bad:
        return None
    return (f"'{path}': a Kubernetes Ingress path must not {' or '.join(bad)}; write the "
            "path without it")


def ingress_host_problem(host: str) -> str | None:
    """What an Ingress rule refuses in `host` (validateIngressRules), or None."""
    if ":" in host:
        return f"'{host}': an Ingress host cannot carry a port; remove ':PORT'"
    try:
        ipaddress.ip_address(host)
        return f"'{host}': an Ingress host must be a DNS name, not an IP address"
    except ValueError:
        pass
    pattern = WILDCARD_SUBDOMAIN if host.startswith("*") else DNS1123_SUBDOMAIN
    if len(host) > SUBDOMAIN_MAX or not pattern.fullmatch(host) or any(
            len(label) > LABEL_MAX for label in host.split(".")):
        return (f"'{host}': not a DNS name a Kubernetes Ingress takes: dot-separated labels "
                f"of at most {LABEL_MAX} lowercase letters, digits and '-', each starting "
                f"and ending with a letter or digit, {SUBDOMAIN_MAX} characters in all")
    return None


def spec_item(w: m.Workload, key: str, i: int) -> str:
    """`key/i` for an item of a list the spec wrote as a list, `key` for a single value
    (`path: /api` and `path: [/a, /b]` both give a list)."""
    return f"{key}/{i}" if f"{key}/{i}" in w.lines else key


# -- whole manifests ------------------------------------------------------------------------

def check_manifests(manifests: Sequence[Mapping[str, Any]],
                    origins: Mapping[tuple[str, str, str], Origin]) -> list[Problem]:
    """Every rule above on every object, each problem at the line that produced it."""
    problems: list[Problem] = []
    for doc in manifests:
        key = manifest_key(doc)
        origin = origins.get(key) or Origin("", 0, "")
        problems.extend(origin.problem(msg) for msg in manifest_problems(doc))
    return sorted(set(problems))


def manifest_key(doc: Mapping[str, Any]) -> tuple[str, str, str]:
    meta = doc.get("metadata", {})
    return (str(doc.get("kind")), str(meta.get("namespace", "")), str(meta.get("name")))


def manifest_problems(doc: Mapping[str, Any]) -> Iterator[str]:
    kind = str(doc.get("kind"))
    meta = doc.get("metadata", {})
    name = str(meta.get("name", ""))
    if (msg := name_problem(kind, name)) is not None:
        yield msg
    if meta.get("namespace") is not None and (
            msg := dns_label_problem(str(meta["namespace"]), "namespace")) is not None:
        yield msg
    yield from _labels(meta.get("labels") or {})
    spec = doc.get("spec") or {}
    if kind == "Deployment":
        yield from _selector(spec)
        yield from _pod(spec.get("template", {}), ("Always",), kind)
    elif kind == "Job":
        yield from _pod(spec.get("template", {}), JOB_RESTART_POLICIES, kind)
    elif kind == "CronJob":
        yield from _cron_fields(str(spec.get("schedule", "")))
        job = spec.get("jobTemplate", {})
        yield from _labels(job.get("metadata", {}).get("labels") or {})
        yield from _pod(job.get("spec", {}).get("template", {}), JOB_RESTART_POLICIES, kind)
    elif kind == "ResourceFlavor":  # its node labels are labels (Kueue's CRD: a label map)
        yield from _labels(spec.get("nodeLabels") or {})
    elif kind in ("ConfigMap", "Secret"):
        size = 0
        for data_key in ("data", "stringData"):
            for k, v in (doc.get(data_key) or {}).items():
                if not CONFIG_KEY.fullmatch(k) or len(k) > SUBDOMAIN_MAX:
                    yield f"{kind} {name}: key '{k}' must be letters, digits, '-', '_' or '.'"
                size += len((v.reveal() if isinstance(v, Secret) else str(v)).encode())
        if size > MAX_DATA_BYTES:
            yield (f"{kind} {name}: its values add up to {size} bytes; Kubernetes allows "
                   f"{MAX_DATA_BYTES} (1 MiB)")


def _labels(labels: Mapping[str, Any]) -> Iterator[str]:
    items = tuple(labels.items())
    if all(type(k) is str and type(v) is str for k, v in items):
        # The same few label sets on every object of a workload: each set checked once.
        yield from _text_labels(items)
    else:
        yield from _each_label(items)


@functools.lru_cache(maxsize=1024)
def _text_labels(items: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
    return tuple(_each_label(items))


def _each_label(items: Iterable[tuple[Any, Any]]) -> Iterator[str]:
    for k, v in items:
        if (msg := label_key_problem(str(k))) is not None:
            yield msg
        if (msg := label_value_problem(str(k), v)) is not None:
            yield msg


def _selector(spec: Mapping[str, Any]) -> Iterator[str]:
    selector = spec.get("selector", {}).get("matchLabels", {})
    labels = spec.get("template", {}).get("metadata", {}).get("labels", {})
    for k, v in selector.items():
        if labels.get(k) != v:
            yield f"selector {k}={v} does not match the pod template's labels"


def _pod(template: Mapping[str, Any], policies: Sequence[str], kind: str) -> Iterator[str]:
    yield from _labels(template.get("metadata", {}).get("labels") or {})
    pod = template.get("spec", {})
    if not pod:
        return
    # the API server checks a nodeSelector as labels (ValidatePodSpec: ValidateLabels)
    yield from _labels(pod.get("nodeSelector") or {})
    policy = pod.get("restartPolicy", "Always")
    if policy not in policies:
        yield (f"a {kind}'s pods need restartPolicy {' or '.join(policies)}, "
               f"not {policy}")
    for c in pod.get("containers", []):
        if (msg := dns_label_problem(str(c.get("name", "")), "container name")) is not None:
            yield msg
        for port in c.get("ports", []):
            if "name" in port and (msg := port_name_problem(str(port["name"]))) is not None:
                yield msg
    for v in pod.get("volumes", []):
        if (msg := dns_label_problem(str(v.get("name", "")), "volume name")) is not None:
            yield msg


_CRON_FIELD = re.compile(r"[0-9*,/-]+")


def _cron_fields(schedule: str) -> Iterator[str]:
    fields = schedule.split()
    if len(fields) != 5 or not all(_CRON_FIELD.fullmatch(f) for f in fields):
        yield f"CronJob schedule '{schedule}' is not five numeric cron fields"


# -- schedules ------------------------------------------------------------------------------

@dataclass(frozen=True)
class CronSchedule:
    """A CronJob's `schedule` and `timeZone` (None: the controller's local time)."""

    schedule: str
    time_zone: str | None


def cron_schedule(w: m.Workload) -> CronSchedule | Problem:
    """The spec's systemd calendar expression as a CronJob schedule, or a problem at the
    spec's `schedule` line saying why cron cannot express it."""
    assert w.schedule is not None
    try:
        spec = parse_calendar(w.schedule)
    except CalendarError as exc:  # the loader refuses these first; kept for direct callers
        return at(w, "schedule", f"'{w.schedule}' is not a calendar expression: {exc}")
    # A named zone is what CronJob's timeZone says; cron fields are read in that zone.
    zone = "Etc/UTC" if spec.utc else spec.timezone
    cron = to_cron(replace(spec, timezone=None, utc=False))
    if cron is None:
        return at(w, "schedule", f"'{w.schedule}' (normalized: {normalized(spec)}) has no cron "
                  "equivalent for a Kubernetes CronJob: " + _why_not_cron(spec)
                  + "; use whole minutes, no years, no '~', and either days or weekdays")
    return CronSchedule(cron, zone)


def _why_not_cron(spec: Any) -> str:
    if spec.year is not None:
        return "it names years"
    if spec.end_of_month:
        return "it counts days from the month's end ('~')"
    if spec.microsecond != (CalendarComponent(0),):
        return "it fires at seconds other than :00"
    if spec.day is not None and spec.weekdays is not None:
        return "it restricts both days and weekdays (cron fires when either matches)"
    return "cron cannot say it"


def whole_seconds(value: float, minimum: int = 1) -> int:
    """Kubernetes counts probe and grace periods in whole seconds: round up, never to 0."""
    return max(minimum, math.ceil(value - 1e-9))
