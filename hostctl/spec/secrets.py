"""Secret values: where they come from, and a type that will not print them.

Secrets live outside the inventory: in a local env-style file (KEY=VALUE lines) and/or in
the controller's environment under a prefix. Values are wrapped in `Secret` so an
accidental `print`, f-string, log line or JSON dump shows `<secret NAME>`, never the value.
"""

from __future__ import annotations

import os
import re
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hostctl.errors import Problem, Source
from hostctl.spec.input_files import InputFileError, read_input

SECRET_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Secret:
    """A secret value. Only `reveal()` gives the value, and only renderers of 0600 files call it."""

    __slots__ = ("__weakref__", "_value", "name")

    def __init__(self, name: str, value: str):
        self.name = name
        self._value = value
        _LIVE.add(self)

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


# Every Secret alive, so the crash report can blank their values out of what it writes.
_LIVE: weakref.WeakSet[Secret] = weakref.WeakSet()


def redact(text: str) -> str:
    """`text` with the value of every secret hostctl holds replaced by `<secret NAME>`."""
    for secret in sorted(list(_LIVE), key=lambda s: -len(s.reveal())):
        if secret.reveal():
            text = text.replace(secret.reveal(), repr(secret))
    return text


def materialize(value: Any, reveal: bool) -> Any:
    """`value` (nested dicts, lists and tuples) with each Secret replaced by its value
    (`reveal`: only for what goes to a 0600 file or over an API) or by `<secret NAME>`."""
    if isinstance(value, Secret):
        return value.reveal() if reveal else repr(value)
    # Plain values (most of a Kong file: hundreds of status codes per upstream) are kept
    # without a call each.
    if isinstance(value, dict):
        return {k: v if type(v) in _PLAIN else materialize(v, reveal) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [v if type(v) in _PLAIN else materialize(v, reveal) for v in value]
    return value


_PLAIN = frozenset({str, int, float, bool, type(None)})


@dataclass(frozen=True)
class SecretStore:
    """Secret values by name; a name missing here is a validation error, never an empty value."""

    values: Mapping[str, Secret] = field(default_factory=dict)
    sources: tuple[str, ...] = ()

    def get(self, name: str) -> Secret | None:
        return self.values.get(name)

    def describe_sources(self) -> str:
        return " or ".join(self.sources) if self.sources else "no secrets source configured"


# Docker reads an --env-file line by line with Go's bufio.Scanner, whose longest line is
# 64 KiB with its newline (docker/cli opts/file.go, bufio.MaxScanTokenSize): a longer
# NAME=VALUE line makes `docker run` fail with "token too long".
ENV_FILE_LINE_MAX = 64 * 1024 - 1


def value_problem(name: str, value: str) -> str | None:
    """Why `value` cannot be secret `name`'s value in the env files render writes (Docker's
    --env-file format: one NAME=VALUE a line, UTF-8), or None. Never quotes the value."""
    try:
        size = len(f"{name}={value}".encode())
    except UnicodeEncodeError:  # an environment variable's bytes that are not UTF-8
        return "the value is not UTF-8 text; Docker env files hold only UTF-8"
    if "\0" in value:
        return "the value contains a NUL character, which no environment variable can hold"
    if "\n" in value or "\r" in value:
        return ("the value contains a line break, which Docker env files cannot carry; "
                "store it base64-encoded")
    if size > ENV_FILE_LINE_MAX:
        return (f"{name}=VALUE is {size} bytes; Docker reads env-file lines of at most "
                f"{ENV_FILE_LINE_MAX} bytes: keep large secrets in a file mounted from a volume")
    return None


def parse_env_file(data: bytes, file: str) -> tuple[dict[str, str], list[Problem]]:
    """Parse KEY=VALUE lines (`#` comments, blank lines, optional `export `, optional quotes).

    Lines end at `\\n` only (a `\\r` before it is part of the line ending, as Windows editors
    write it), as env files are defined: `str.splitlines()` would also end a line at U+2028
    and other characters, splitting a value in two. A bad line is reported by number and
    secret name, never with its content: it may hold a secret.
    """
    values: dict[str, str] = {}
    problems: list[Problem] = []
    data = data.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark, as Docker allows
    for number, raw in enumerate(data.split(b"\n"), start=1):
        raw = raw.removesuffix(b"\r")
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            name = raw.partition(b"=")[0].decode("utf-8", errors="replace").strip()
            name = name.removeprefix("export ").strip()
            if SECRET_NAME.fullmatch(name):
                problems.append(Problem(file, number, name, "the value is not UTF-8 text; "
                                                            "save the file as UTF-8"))
                # Known, so the specs using it hear about this line only, not "missing".
                values.setdefault(name, raw.decode("utf-8", errors="replace"))
            else:
                problems.append(Problem(file, number, "", "not UTF-8 text; save the file as "
                                                          "UTF-8"))
            continue
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
        why = value_problem(key, value)
        if why:
            problems.append(Problem(file, number, key, why))
        values[key] = value
    return values, problems


def load_secrets(
    env_file: str | None, env_prefix: str | None, environ: Mapping[str, str] | None = None,
    display_file: str | None = None, where: Source | None = None,
) -> tuple[SecretStore, list[Problem]]:
    """Read every secret the sources offer. The environment wins over the file.

    `where`: the inventory's secrets/env_file, which a file that cannot be read is reported
    at (the fix is there, or in creating the file)."""
    environ = os.environ if environ is None else environ
    problems: list[Problem] = []
    raw: dict[str, str] = {}
    sources: list[str] = []
    if env_file:
        shown = display_file or env_file
        sources.append(shown)
        where = where or Source(shown, 0, "")
        try:
            data = read_input(env_file)
        except InputFileError as exc:
            fix = ("; create it (NAME=VALUE lines, mode 0600) or fix the path (it is relative "
                   "to the inventory)" if str(exc) == "not found" else "")
            problems.append(where.problem(f"secrets file '{shown}' {exc}{fix}"))
            data = b""
        parsed, bad = parse_env_file(data, shown)
        raw.update(parsed)
        problems.extend(bad)
    if env_prefix:
        sources.append(f"environment variables {env_prefix}*")
        for key, value in sorted(environ.items()):
            if key.startswith(env_prefix) and len(key) > len(env_prefix):
                name = key[len(env_prefix):]
                why = value_problem(name, value)
                if why:
                    problems.append(Problem("environment", 0, key, why))
                raw[name] = value
    store = SecretStore({k: Secret(k, v) for k, v in sorted(raw.items())}, tuple(sources))
    return store, problems
