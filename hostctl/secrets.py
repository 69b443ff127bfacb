"""Secret values: where they come from, and a type that will not print them.

Secrets live outside the inventory: in a local env-style file (KEY=VALUE lines) and/or in
the controller's environment under a prefix. Values are wrapped in `Secret` so an
accidental `print`, f-string, log line or JSON dump shows `<secret NAME>`, never the value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hostctl.errors import Problem

SECRET_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Secret:
    """A secret value. Only `reveal()` gives the value, and only renderers of 0600 files call it."""

    __slots__ = ("_value", "name")

    def __init__(self, name: str, value: str):
        self.name = name
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"<secret {self.name}>"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and (self.name, self._value) == (other.name, other._value)

    def __hash__(self) -> int:
        return hash((self.name, self._value))


def materialize(value: Any, reveal: bool) -> Any:
    """`value` (nested dicts, lists and tuples) with each Secret replaced by its value
    (`reveal`: only for what goes to a 0600 file or over an API) or by `<secret NAME>`."""
    if isinstance(value, Secret):
        return value.reveal() if reveal else repr(value)
    if isinstance(value, dict):
        return {k: materialize(v, reveal) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [materialize(v, reveal) for v in value]
    return value


@dataclass(frozen=True)
class SecretStore:
    """Secret values by name; a name missing here is a validation error, never an empty value."""

    values: Mapping[str, Secret] = field(default_factory=dict)
    sources: tuple[str, ...] = ()

    def get(self, name: str) -> Secret | None:
        return self.values.get(name)

    def describe_sources(self) -> str:
        return " or ".join(self.sources) if self.sources else "no secrets source configured"


def parse_env_file(text: str, file: str) -> tuple[dict[str, str], list[Problem]]:
    """Parse KEY=VALUE lines (`#` comments, blank lines, optional `export `, optional quotes).

    A bad line is reported by number, and never with its content: it may hold a secret.
    """
    values: dict[str, str] = {}
    problems: list[Problem] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep:
            problems.append(Problem(file, number, "", "expected NAME=VALUE (no '=' on this line)"))
            continue
        if not SECRET_NAME.fullmatch(key):
            problems.append(Problem(
                file, number, "",
                "the name before '=' must be letters, digits and _ and not start with a digit",
            ))
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif value[:1] in ("'", '"'):
            problems.append(Problem(file, number, key, "the value's opening quote is never closed"))
            continue
        if key in values:
            problems.append(Problem(file, number, key, "defined twice in this file; keep one"))
            continue
        values[key] = value
    return values, problems


def load_secrets(
    env_file: str | None, env_prefix: str | None, environ: Mapping[str, str] | None = None,
    display_file: str | None = None,
) -> tuple[SecretStore, list[Problem]]:
    """Read every secret the sources offer. The environment wins over the file."""
    environ = os.environ if environ is None else environ
    problems: list[Problem] = []
    raw: dict[str, str] = {}
    sources: list[str] = []
    if env_file:
        shown = display_file or env_file
        sources.append(shown)
        try:
            with open(env_file, encoding="utf-8") as fh:
                text = fh.read()
        except FileNotFoundError:
            problems.append(Problem(shown, 0, "", "secrets file not found; create it "
                                    "(NAME=VALUE lines, mode 0600) or fix secrets/env_file"))
            text = ""
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(shown, 0, "", f"cannot read secrets file: {_reason(exc)}"))
            text = ""
        parsed, bad = parse_env_file(text, shown)
        raw.update(parsed)
        problems.extend(bad)
    if env_prefix:
        sources.append(f"environment variables {env_prefix}*")
        for key, value in environ.items():
            if key.startswith(env_prefix) and len(key) > len(env_prefix):
                raw[key[len(env_prefix):]] = value
    store = SecretStore({k: Secret(k, v) for k, v in sorted(raw.items())}, tuple(sources))
    return store, problems


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return type(exc).__name__
