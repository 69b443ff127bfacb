"""Workload names and the systemd unit names built from them.

A workload name ends up in several places, each with its own rules, so hostctl allows only
what all of them accept:
- systemd unit names (`hostctl-web-1.service`): ASCII letters, digits, `:-_.\\`, at most 255
  characters (unit_name_is_valid() in src/basic/unit-name.c);
- Docker container names (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`);
- DNS labels and Kubernetes object names, for a later Kubernetes handoff: RFC 1123 labels,
  lowercase letters, digits and `-`, starting and ending with a letter or digit, at most 63.
  `_` and `.` are therefore refused even though systemd and Docker would take them.

The limit is 40 characters: with the `hostctl-job-` prefix that gives 52, the longest name a
Kubernetes CronJob may have (its Jobs append 11 characters and must stay within 63), and
`hostctl-NAME-INDEX` stays a valid DNS label. Kubernetes Service names must also start with a
letter (RFC 1035); the `hostctl-` prefix takes care of that, so names may start with a digit.
This matches NAME_PATTERN / NAME_MAX in hostctl/spec/rules.py.
"""

from __future__ import annotations

import re

WORKLOAD_NAME_MAX = 40
UNIT_PREFIX = "hostctl-"
UNIT_NAME_MAX = 255  # UNIT_NAME_MAX is 256 bytes with the terminating NUL
UNIT_TYPES = frozenset(
    {"service", "socket", "target", "device", "mount", "automount", "swap", "timer", "path",
     "slice", "scope"}
)  # fmt: skip

_WORKLOAD_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
_UNIT_CHARS = re.compile(r"[A-Za-z0-9:_.\\-]+")
_INSTANCE_CHARS = re.compile(r"[A-Za-z0-9:_.\\@-]+")  # after the first '@', '@' is a plain char


def check_workload_name(name: str) -> str | None:
    """Return why `name` cannot name a workload, or None when it can."""
    if not isinstance(name, str):
        return f"name must be a string, not {type(name).__name__}"
    if not name:
        return "name is empty"
    problem = _first_problem(name)
    if problem is None:
        return None
    suggestion = _suggest(name)
    return f"{problem}; e.g. '{suggestion}'" if suggestion else problem


def _first_problem(name: str) -> str | None:
    if len(name) > WORKLOAD_NAME_MAX:
        return f"name is {len(name)} characters long; at most {WORKLOAD_NAME_MAX} are allowed"
    for index, char in enumerate(name, start=1):
        if "A" <= char <= "Z":
            return f"uppercase '{char}' at position {index}: names are lowercase"
        if char in "_.":
            return (
                f"'{char}' at position {index} is not allowed (names must also be DNS labels): "
                "use '-'"
            )
        if not ("a" <= char <= "z" or "0" <= char <= "9" or char == "-"):
            return f"{char!r} at position {index} is not allowed: use a-z, 0-9 and '-'"
    if name.startswith("-"):
        return "name must start with a lowercase letter or digit, not '-'"
    if name.endswith("-"):
        return "name must end with a lowercase letter or digit, not '-'"
    assert _WORKLOAD_NAME.fullmatch(name), name  # the checks above are the pattern, spelled out
    return None


def _suggest(name: str) -> str | None:
    """A valid name close to `name`, when one is easy to derive (not from non-ASCII text)."""
    if not name.isascii():
        return None
    candidate = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:WORKLOAD_NAME_MAX]
    candidate = candidate.rstrip("-")
    if candidate and candidate != name and _first_problem(candidate) is None:
        return candidate
    return None


def unit_name(*parts: str | int, unit_type: str = "service", instance: str | None = None) -> str:
    """`hostctl-<parts joined by '-'>[@instance].<unit_type>`, checked against systemd's rules.

    unit_name("web", 2) == "hostctl-web-2.service";
    unit_name("job", "nightly", instance="") == "hostctl-job-nightly@.service" (a template).
    """
    if not parts:
        raise ValueError("unit_name() needs at least one name part")
    words = []
    for part in parts:
        if isinstance(part, bool) or (isinstance(part, int) and part < 0):
            raise ValueError(f"unit name part {part!r} is not a name or a non-negative number")
        words.append(str(part))
    name = UNIT_PREFIX + "-".join(words)
    if instance is not None:
        name += "@" + instance
    name += "." + unit_type
    if not unit_name_is_valid(name):
        raise ValueError(f"'{name}' is not a valid systemd unit name")
    return name


def unit_name_is_valid(name: str) -> bool:
    """unit_name_is_valid(name, UNIT_NAME_ANY) from src/basic/unit-name.c (systemd 252)."""
    if not name or len(name) > UNIT_NAME_MAX:
        return False
    stem, dot, unit_type = name.rpartition(".")
    if not dot or unit_type not in UNIT_TYPES or not stem:
        return False
    prefix, at, instance = stem.partition("@")
    if not prefix or not _UNIT_CHARS.fullmatch(prefix):
        return False
    # An empty instance is a template (hostctl-job-x@.service), which is fine.
    return not (at and instance and not _INSTANCE_CHARS.fullmatch(instance))
