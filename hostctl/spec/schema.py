"""A small declarative validator for YAML documents, with located, fix-it error messages.

Why not pydantic: hostctl's error text is an interface (`file:line: path: what, and how to
fix it`), unknown keys need a did-you-mean, and a value that may be a name *or* a mapping
(`resources: gpu_medium` or `resources: {cpus: 2}`) must yield one message, not one per
union member. The rules here are few and each maps to one message.
"""

from __future__ import annotations

import difflib
import math
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, fields, is_dataclass, replace
from decimal import Decimal
from typing import Any, Generic, TypeVar

from hostctl.errors import Problem
from hostctl.spec.yamlsource import Document, Path, format_path
from hostctl.systemd.quoting import LONG_LINE_MAX

T = TypeVar("T")


class _Invalid:
    """Marker for a value that failed validation (its problem is already recorded)."""

    def __repr__(self) -> str:
        return "INVALID"


INVALID: Any = _Invalid()


def failed(value: object) -> bool:
    """True for a value that failed validation (a function, so type checkers do not narrow)."""
    return value is INVALID


@dataclass
class Context:
    """Where problems are collected while one document is checked."""

    doc: Document
    problems: list[Problem]

    def error(self, path: Path, message: str) -> Any:
        self.problems.append(
            Problem(self.doc.file, self.doc.line_of(path), format_path(path), message)
        )
        return INVALID


def describe(value: Any) -> str:
    """How a YAML value is named in messages."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int | float):
        text = number_text(value)
        return text if text.startswith("a ") else f"a number ({text})"
    if isinstance(value, str):
        return f"'{value}'" if len(value) <= 60 else f"'{value[:57]}...'"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


# The largest whole number every reader of hostctl's values holds exactly: JSON parsers that
# use doubles, Lua (Kong), JavaScript (Grafana). Numbers beyond it are refused whatever the
# field, so no conversion downstream overflows or rounds.
NUMBER_CEILING = 2**53 - 1


def number_text(value: int | float) -> str:
    """A YAML number as messages show it; short even when the number is huge or not finite."""
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        return str(value)
    if abs(value) > 10**30:
        digits = int(value.bit_length() * math.log10(2)) + 1
        return f"a {'negative ' if value < 0 else ''}number of about {digits} digits"
    return str(value)


# What env may take of a unit's docker run line: most of systemd's limit for one line, the
# rest left for the docker options, image, command and args around it.
ENV_LINE_BUDGET = 3 * LONG_LINE_MAX // 4


class Check(Generic[T]):
    """A rule that checks one value and returns its typed form, or INVALID."""

    expected = "a value"

    def __call__(self, value: Any, path: Path, ctx: Context) -> T:
        raise NotImplementedError


class Str(Check[str]):
    expected = "a string"

    def __init__(
        self,
        pattern: str | None = None,
        hint: str = "",
        choices: tuple[str, ...] | None = None,
        max_len: int | None = None,
        coerce_numbers: bool = False,
    ):
        self.pattern = re.compile(pattern) if pattern else None
        self.hint = hint
        self.choices = choices
        self.max_len = max_len
        self.coerce_numbers = coerce_numbers

    def __call__(self, value: Any, path: Path, ctx: Context) -> str:
        if self.coerce_numbers and isinstance(value, int | float) and not isinstance(value, bool):
            text = _number_as_text(value)
            if text is None:
                return ctx.error(path, f"got {describe(value)}, which YAML reads as a number "
                                       "and not as the text written; quote it")
            value = text
        if isinstance(value, bool) and self.coerce_numbers:
            return ctx.error(
                path,
                f"got {describe(value)}; YAML reads yes/no/on/off/true/false as booleans, "
                f"quote it: '{str(value).lower()}'",
            )
        if not isinstance(value, str):
            return ctx.error(path, f"expected {self.expected}, got {describe(value)}")
        if self.choices is not None and value not in self.choices:
            return ctx.error(
                path, f"{describe(value)} is not one of: {', '.join(self.choices)}"
                + did_you_mean(value, self.choices)
            )
        if self.max_len is not None and len(value) > self.max_len:
            return ctx.error(path, f"is {len(value)} characters long; at most {self.max_len}")
        if self.pattern is not None and not self.pattern.fullmatch(value):
            return ctx.error(path, f"{describe(value)} is not valid: {self.hint}")
        return value


class TextRule(Check[str]):
    """A string judged by `problem(text)`: None when it is fine, else what is wrong, written
    after the quoted value (`'x' is not ...`)."""

    def problem(self, text: str) -> str | None:
        raise NotImplementedError

    def __call__(self, value: Any, path: Path, ctx: Context) -> str:
        text: str = Str()(value, path, ctx)
        if failed(text):
            return INVALID
        why = self.problem(text)
        return ctx.error(path, f"{describe(text)} {why}") if why else text


class Int(Check[int]):
    expected = "a whole number"

    def __init__(self, minimum: int | None = None, maximum: int | None = None):
        self.minimum, self.maximum = minimum, maximum

    def __call__(self, value: Any, path: Path, ctx: Context) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            return ctx.error(path, f"expected a whole number, got {describe(value)}")
        return _in_range(value, self.minimum, self.maximum, path, ctx)


def _number_as_text(value: int | float) -> str | None:
    """A number read where text is expected, as text; None for .inf, .nan and integers too
    long for Python to write out."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    try:
        return str(value)
    except ValueError:  # more than 4300 digits (sys.get_int_max_str_digits)
        return None


class Number(Check[float]):
    expected = "a number"

    def __init__(self, minimum: float | None = None, maximum: float | None = None,
                 exclusive_minimum: bool = False):
        self.minimum, self.maximum = minimum, maximum
        self.exclusive_minimum = exclusive_minimum

    def __call__(self, value: Any, path: Path, ctx: Context) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return ctx.error(path, f"expected a number, got {describe(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            return ctx.error(path, f"expected a finite number, got {number_text(value)}")
        if self.exclusive_minimum and self.minimum is not None and value <= self.minimum:
            return ctx.error(path, f"must be greater than {self.minimum:g}, got "
                                   f"{_number(value)}")
        checked = _in_range(value, self.minimum, self.maximum, path, ctx)
        return INVALID if failed(checked) else float(checked)


def _in_range(value: Any, lo: Any, hi: Any, path: Path, ctx: Context) -> Any:
    """`value` between `lo` and `hi` (each None for no bound of the field's own), and within
    NUMBER_CEILING either way."""
    lo = -NUMBER_CEILING if lo is None else max(lo, -NUMBER_CEILING)
    hi = NUMBER_CEILING if hi is None else min(hi, NUMBER_CEILING)
    if value < lo:
        return ctx.error(path, f"must be at least {lo}, got {number_text(value)}")
    if value > hi:
        return ctx.error(path, f"must be at most {hi}, got {number_text(value)}")
    return value


def _number(value: int | float) -> str:
    """A number as `must be greater than` messages show it: `0.5`, `1e+300`."""
    return f"{value:g}" if isinstance(value, float) else number_text(value)


class Bool(Check[bool]):
    expected = "true or false"

    def __call__(self, value: Any, path: Path, ctx: Context) -> bool:
        if not isinstance(value, bool):
            return ctx.error(path, f"expected true or false, got {describe(value)}")
        return value


# ASCII digits only: `\d` would also read "١٠s" (Arabic-Indic digits) as 10 seconds.
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
# The longest duration Go's time.Duration holds (2^63-1 ns, about 292 years): Docker parses
# every duration it is given into one, so nothing longer may pass, whatever the field.
DURATION_CEILING = (2**63 - 1) / 1e9


def format_seconds(seconds: float) -> str:
    """`90s` for 90.0, `1d` for 86400.0: a duration as messages show it."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:g}s"


class Duration(Check[float]):
    """Seconds, from a number of seconds or text like `90s`, `1m30s`, `500ms`, `2h`.

    `maximum`: the longest the field accepts (every field has one, for what reads it:
    Docker, systemd, hostctl's probe). `zero_or_minimum`: 0 is allowed (it means "none")
    although other values must be at least `minimum`."""

    expected = "a duration"

    def __init__(self, minimum: float = 0.0, maximum: float = DURATION_CEILING,
                 zero_or_minimum: bool = False):
        self.minimum = minimum
        self.maximum = min(maximum, DURATION_CEILING)
        self.zero_or_minimum = zero_or_minimum

    def __call__(self, value: Any, path: Path, ctx: Context) -> float:
        seconds = parse_duration(value)
        if seconds is None:
            return ctx.error(
                path, f"expected a duration such as 30s, 5m, 1h30m or 500ms, got {describe(value)}"
            )
        if seconds < self.minimum and not (self.zero_or_minimum and seconds == 0):
            also = "0 or " if self.zero_or_minimum else ""
            return ctx.error(path, f"must be {also}at least {format_seconds(self.minimum)}, "
                                   f"got {value}")
        if seconds > self.maximum:
            return ctx.error(path, f"must be at most {format_seconds(self.maximum)}, got "
                                   f"{describe(value)}")
        return seconds


def parse_duration(value: Any) -> float | None:
    """`1m30s` -> 90.0; a plain number is seconds; None if not a duration."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if 0 <= value < math.inf else None
    if not isinstance(value, str) or not value:
        return None
    text = value.replace(" ", "")
    total, pos = 0.0, 0
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    return total if pos == len(text) and pos > 0 and total < math.inf else None


_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*(Ki|Mi|Gi|Ti|K|M|G|T|k)?B?", re.ASCII)
_SIZE_UNITS = {
    None: 1, "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
}
# Docker reads sizes into a Go int64 (and Kubernetes quantities are int64 too).
SIZE_CEILING = 2**63 - 1


class Size(Check[int]):
    """Bytes, from a number of bytes or text like `512Mi`, `1Gi`, `2G`."""

    expected = "a size"

    def __init__(self, minimum: int = 1, maximum: int = SIZE_CEILING):
        self.minimum = minimum
        self.maximum = min(maximum, SIZE_CEILING)

    def __call__(self, value: Any, path: Path, ctx: Context) -> int:
        size = parse_size(value)
        if size is None:
            return ctx.error(
                path, f"expected a size such as 512Mi, 1Gi or 2G, got {describe(value)}"
            )
        if size < self.minimum:
            return ctx.error(path, f"must be at least {self.minimum} bytes, got {value}")
        if size > self.maximum:
            return ctx.error(path, f"must be at most {self.maximum} bytes, got "
                                   f"{describe(value)}")
        return size


def parse_size(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if not isinstance(value, str):
        return None
    m = _SIZE.fullmatch(value.strip())
    if not m:
        return None
    # Decimal arithmetic: float() of a long digit string is inf (or loses bytes).
    return int(Decimal(m.group(1)) * _SIZE_UNITS[m.group(2)])


class ListOf(Check[tuple[Any, ...]]):
    expected = "a list"

    def __init__(self, item: Check[Any], min_len: int = 0, single_ok: bool = False):
        self.item, self.min_len, self.single_ok = item, min_len, single_ok

    def __call__(self, value: Any, path: Path, ctx: Context) -> tuple[Any, ...]:
        if self.single_ok and not isinstance(value, list) and value is not None:
            value = [value]
            result = self.item(value[0], path, ctx)
            return INVALID if result is INVALID else (result,)
        if not isinstance(value, list):
            return ctx.error(path, f"expected a list, got {describe(value)}")
        if len(value) < self.min_len:
            return ctx.error(path, f"needs at least {self.min_len} item(s)")
        out = [self.item(v, (*path, i), ctx) for i, v in enumerate(value)]
        return INVALID if any(o is INVALID for o in out) else tuple(out)


class MapOf(Check[dict[str, Any]]):
    expected = "a mapping"

    def __init__(self, key: Str, value: Check[Any], keep_order: bool = False):
        # Sorted by default so reordering keys (env, labels) changes no hash and no file;
        # keep_order where order means something (hosts: "the first eligible host").
        self.key, self.value, self.keep_order = key, value, keep_order

    def __call__(self, value: Any, path: Path, ctx: Context) -> dict[str, Any]:
        if not isinstance(value, dict):
            return ctx.error(path, f"expected a mapping, got {describe(value)}")
        out: dict[str, Any] = {}
        bad = False
        for k, v in value.items():
            key = self.key(k, (*path, k), ctx)
            val = self.value(v, (*path, k), ctx)
            if key is INVALID or val is INVALID:
                bad = True
            else:
                out[key] = val
        if bad:
            return INVALID
        return out if self.keep_order else dict(sorted(out.items()))


class EnvVars(MapOf):
    """Environment variables (`NAME: value`). Render passes each as a `--env NAME=VALUE` word
    of the one `ExecStart=` line of a unit, and systemd refuses a unit file line longer than
    LONG_LINE_MAX (1 MiB): the variables together must leave that line room."""

    def __call__(self, value: Any, path: Path, ctx: Context) -> dict[str, Any]:
        env = super().__call__(value, path, ctx)
        if failed(env):
            return env
        size = sum(len(f" --env {k}={v}".encode("utf-8", "surrogatepass")) for k, v in env.items())
        if size > ENV_LINE_BUDGET:
            return ctx.error(path, f"{len(env)} variables take {size} bytes of the unit's "
                                   f"docker run line (--env NAME=VALUE each); systemd reads unit "
                                   f"file lines of at most {LONG_LINE_MAX} bytes, so keep env "
                                   f"under {ENV_LINE_BUDGET} bytes and put bulky settings in a "
                                   "file the container reads")
        return env


class Command(Check[tuple[str, ...]]):
    """A command as a list of words, or one string split like a shell would (no shell runs)."""

    expected = "a command"

    def __call__(self, value: Any, path: Path, ctx: Context) -> tuple[str, ...]:
        if isinstance(value, str):
            try:
                words = shlex.split(value)
            except ValueError as exc:
                return ctx.error(path, f"cannot split {describe(value)} into words ({exc}); "
                                       "write it as a list of words instead")
            if not words:
                return ctx.error(path, "is empty; give at least the program to run")
            return tuple(words)
        word = Str(coerce_numbers=True)
        return ListOf(word, min_len=1)(value, path, ctx)


class AnyMapping(Check[dict[str, Any]]):
    """A section whose contents a later part of hostctl defines; only its shape is checked."""

    expected = "a mapping"

    def __call__(self, value: Any, path: Path, ctx: Context) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            return ctx.error(path, f"expected a mapping, got {describe(value)}")
        return value


class ByShape(Check[Any]):
    """One of several forms chosen by the YAML type of the value (str, dict, list...)."""

    def __init__(self, expected: str, **forms: Check[Any]):
        self.expected = expected
        self.forms = forms

    def __call__(self, value: Any, path: Path, ctx: Context) -> Any:
        shape = {str: "str", dict: "dict", list: "list", int: "int", float: "float",
                 bool: "bool"}.get(type(value))
        check = self.forms.get(shape or "")
        if check is None:
            return ctx.error(path, f"expected {self.expected}, got {describe(value)}")
        return check(value, path, ctx)


@dataclass(frozen=True)
class Field:
    check: Check[Any]
    required: bool = False
    key: str | None = None  # YAML key when it differs from the attribute name


class Record(Check[T]):
    """A mapping with known keys, built into the dataclass `cls`; unknown keys are errors."""

    expected = "a mapping"

    def __init__(
        self,
        cls: Callable[..., T],
        spec: Mapping[str, Field | Check[Any]],
        extra: Mapping[str, Any] | None = None,
    ):
        self.cls = cls
        self.fields = {
            name: f if isinstance(f, Field) else Field(f) for name, f in spec.items()
        }
        self.keys = {f.key or name: name for name, f in self.fields.items()}
        self.extra = extra or {}
        if is_dataclass(cls):
            # A schema bug, caught at import: optional keys need a dataclass default.
            defaults = {f.name for f in fields(cls)
                        if f.default is not MISSING or f.default_factory is not MISSING}
            for name, f in self.fields.items():
                assert f.required or name in defaults, f"{cls}: {name} needs a default"

    def __call__(self, value: Any, path: Path, ctx: Context) -> T:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            return ctx.error(path, f"expected a mapping, got {describe(value)}")
        bad = False
        for key in value:
            if key not in self.keys:
                ctx.error((*path, key), f"unknown key '{key}'" + did_you_mean(key, self.keys)
                          + f" (known: {', '.join(sorted(self.keys))})")
                bad = True
        kwargs: dict[str, Any] = dict(self.extra)
        for key, name in self.keys.items():
            f = self.fields[name]
            if key not in value or (value[key] is None and f.required):
                if f.required:
                    # At the top of a file the missing key itself is the field to name.
                    ctx.error(path or (key,), f"missing required key '{key}'")
                    bad = True
                continue
            if value[key] is None:
                continue  # an explicit null keeps the default
            result = f.check(value[key], (*path, key), ctx)
            if result is INVALID:
                bad = True
            else:
                kwargs[name] = result
        if bad:
            return INVALID
        obj = self.cls(**kwargs)
        return obj


def did_you_mean(word: str, known: Any) -> str:
    match = difflib.get_close_matches(str(word), [str(k) for k in known], n=1, cutoff=0.6)
    return f"; did you mean '{match[0]}'?" if match else ""


class Section(Check[Any]):
    """An inventory section checked by the check `build()` returns (built on first use, so
    section modules may import spec_schema lazily), whose typed result also remembers its
    file and the line of every key under it, for the cross-checks that come later.

    `empty_is_off`: a missing or empty section means the feature is not used (None).
    """

    expected = "a mapping"

    def __init__(self, build: Callable[[], Check[Any]], *, empty_is_off: bool = True):
        self.build = build
        self.empty_is_off = empty_is_off

    def __call__(self, value: Any, path: Path, ctx: Context) -> Any:
        if self.empty_is_off and (value is None or value == {}):
            return None
        typed = self.build()(value, path, ctx)
        if failed(typed):
            return INVALID
        lines = {format_path(p): line for p, line in ctx.doc.lines.items()
                 if p[:len(path)] == path}
        return replace(typed, file=ctx.doc.file, lines=lines)
