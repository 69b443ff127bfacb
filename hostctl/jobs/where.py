"""`hostctl runs --where`: simple comparisons on a run's fields, metrics and parameters.

An expression is `NAME OP VALUE` comparisons joined by `and` (any case), OP one of
`= == != < <= > >=`, VALUE a number, a word or a quoted string ('...' or "...", no escapes).

What NAME means, for each record:
- a field of the record (`FIELDS`: job, experiment, state, exit, host, ...); `note` is the
  user's `hostctl run --note` line, `outcome_note` what the queue noted, `duration` the run's
  seconds, `cpus` the CPUs it claimed (one when it claimed none), times epoch milliseconds;
- else a metric's summary: `val_auc` is its last value, `val_auc.min`, `.max`, `.last` say
  which; `metrics.val_auc` names the metric even where a field has that name;
- else a parameter (`--set` value or the spec's env); `params.LR` names it explicitly.

Values compare as numbers when both sides read as numbers (`LR=0.10` matches a parameter
`0.1`), else as strings (`=` and `!=` only: `<` `<=` `>` `>=` need a number, refused when
parsing: an order between words would be an accident of spelling). A record that lacks
the name (or whose value cannot be ordered against a number) does not match.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from hostctl.errors import HostctlError, printable
from hostctl.jobs.records import MetricSummary, RunRecord

OPS = ("=", "==", "!=", "<", "<=", ">", ">=")
_OPS_SHOWN = "= != < <= > >="
NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_.:/-]*")
_OP = re.compile(r"==|!=|<=|>=|=|<|>")
_OP_CHARS = "=!<>"
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_WORD = re.compile(r"[^\s'\"=!<>]+")
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)
_SUFFIXES = ("last", "min", "max")

Value = float | str


def _seconds(r: RunRecord) -> float | None:
    ms = r.duration_ms
    return None if ms is None else ms / 1000


def _text(attr: str) -> Callable[[RunRecord], Value | None]:
    return lambda r: getattr(r, attr) or None  # an empty field is a field the run lacks


def _number(attr: str, zero_is_none: bool = False) -> Callable[[RunRecord], Value | None]:
    def get(r: RunRecord) -> Value | None:
        v = getattr(r, attr)
        return None if zero_is_none and not v else float(v)
    return get


FIELDS: dict[str, Callable[[RunRecord], Value | None]] = {
    **{f: _text(f) for f in ("id", "host", "job", "project", "state", "group", "gpus", "exit",
                              "by", "experiment", "description", "image", "image_id",
                              "spec_hash", "git_rev", "git_branch", "rerun_of")},
    "run": _text("id"),
    "note": _text("description"),
    "outcome_note": _text("note"),
    "cpus": lambda r: r.cpus / 1000 if r.cpus > 0 else 1.0,  # CPUs, as runs --json has them
    **{f: _number(f) for f in ("shard", "shards", "need", "memory", "attempt",
                                "attempts", "metrics_points", "metrics_invalid",
                                "metrics_dropped")},
    **{f: _number(f, zero_is_none=True) for f in ("submitted", "started", "ended")},
    "duration": _seconds,
}


@dataclass(frozen=True)
class Comparison:
    """One `NAME OP VALUE`; op `==` is kept as `=`. A number VALUE is a float, else a str."""

    name: str
    op: str
    value: Value
    raw: str = field(default="", compare=False)  # the value as written

    def __str__(self) -> str:
        """As it could be written back: quoted when a word would not read the same."""
        v = self.value
        if isinstance(v, float):
            return f"{self.name}{self.op}{self.raw or f'{v:g}'}"
        plain = _WORD.fullmatch(v) and not _NUMBER.fullmatch(v) and v.lower() != "and"
        return f"{self.name}{self.op}{v if plain else repr(v)}"


def _refuse(expr: str, part: str, how: str) -> HostctlError:
    return HostctlError(f"--where {printable(repr(expr))}: {printable(repr(part))} {how}")


def parse_where(expr: str) -> tuple[Comparison, ...]:
    """The comparisons of a `--where` expression (all must hold), or a HostctlError naming
    the part that is not a comparison and how to write one."""
    out: list[Comparison] = []
    pos = _skip(expr, 0)
    if pos == len(expr):
        raise HostctlError(f"--where {printable(repr(expr))}: give NAME OP VALUE comparisons "
                           "joined by `and`, e.g. --where 'val_auc>0.9 and LR=0.1'")
    while True:
        comparison, pos = _comparison(expr, pos)
        out.append(comparison)
        if _skip(expr, pos) == len(expr):
            return tuple(out)
        joined = _AND.match(expr, pos)
        if joined is None or joined.end() == len(expr):
            if expr[pos:].strip().lower() == "and":
                raise _refuse(expr, expr.strip(), "ends with `and`; add a comparison after it "
                              "or remove the `and`")
            raise _refuse(expr, expr[pos:].strip(), "follows a comparison; join comparisons "
                          "with `and` (a value with spaces goes in quotes)")
        pos = joined.end()


def _skip(expr: str, pos: int) -> int:
    while pos < len(expr) and expr[pos].isspace():
        pos += 1
    return pos


def _part(expr: str, pos: int) -> str:
    """The bad part to name: from pos up to the next ` and ` (or the end)."""
    joined = _AND.search(expr, pos)
    return expr[pos:joined.start() if joined else len(expr)].strip()


def _comparison(expr: str, pos: int) -> tuple[Comparison, int]:
    """The comparison starting at pos, and where it ends."""
    name = NAME_PATTERN.match(expr, pos)
    if name is None:
        raise _refuse(expr, _part(expr, pos), "does not start with a name; write NAME OP "
                      "VALUE with NAME a field, metric or parameter (letters, digits, _ . : / -)")
    at = _skip(expr, name.end())
    op = _OP.match(expr, at)
    if op is None or expr[op.end():op.end() + 1] in tuple(_OP_CHARS):
        raise _refuse(expr, _part(expr, pos if op is None else at), "is not a comparison; write "
                      f"NAME OP VALUE with OP one of {_OPS_SHOWN}")
    at = _skip(expr, op.end())
    value, raw, end = _value(expr, at, expr[pos:at])
    kind = op.group().replace("==", "=")
    if kind in ("<", "<=", ">", ">=") and not isinstance(value, float):
        raise _refuse(expr, expr[pos:end], f"orders words; {kind} needs a number (compare "
                      "words with = or !=)")
    return Comparison(name.group(), kind, value, raw), end


def _value(expr: str, pos: int, left: str) -> tuple[Value, str, int]:
    """The value at pos: (number or string, as written, where it ends)."""
    quote = expr[pos:pos + 1]
    if quote in ("'", '"'):
        end = expr.find(quote, pos + 1)
        if end < 0:
            raise _refuse(expr, expr[pos:].strip(), f"has no closing {quote}")
        return expr[pos + 1:end], expr[pos + 1:end], end + 1
    word = _WORD.match(expr, pos)
    if word is None:
        raise _refuse(expr, left.strip(), "has no value; write NAME OP VALUE with VALUE a "
                      "number, a word or a quoted string")
    text = word.group()
    if _NUMBER.fullmatch(text) and math.isfinite(float(text)):
        return float(text), text, word.end()
    return text, text, word.end()


# -- resolving a name against a record ------------------------------------------------------

def metrics_of(r: RunRecord) -> Mapping[str, MetricSummary]:
    """The run's metric summaries (parsed once per record: RunRecord caches them)."""
    return r.metrics


def params_of(r: RunRecord) -> Mapping[str, str]:
    """The run's parameters (parsed once per record)."""
    return r.params


def lookup(r: RunRecord, name: str) -> Value | None:
    """NAME's value in the record (see the module doc), None when the record lacks it.
    Metric values are floats; fields and parameters are as recorded (str) except the
    numeric fields."""
    get = FIELDS.get(name)
    if get is not None:
        return get(r)
    if name.startswith("params."):
        return params_of(r).get(name[len("params."):])
    explicit = name.startswith("metrics.")
    metric = name[len("metrics."):] if explicit else name
    metrics = metrics_of(r)
    summary = metrics.get(metric)
    if summary is not None:
        return summary.last
    base, dot, which = metric.rpartition(".")
    if dot and which in _SUFFIXES and base in metrics:
        return float(getattr(metrics[base], which))
    if explicit:
        return None
    return params_of(r).get(name)


def as_number(v: Value | None) -> float | None:
    """The value as a number when it reads as one (a parameter "0.1"), else None."""
    if isinstance(v, float):
        return v
    if v is not None and _NUMBER.fullmatch(v.strip()):
        number = float(v)
        return number if math.isfinite(number) else None
    return None


def holds(c: Comparison, r: RunRecord) -> bool:
    """Whether the record satisfies the comparison (a record lacking the name does not)."""
    have = lookup(r, c.name)
    if have is None:
        return False
    left: Value
    right: Value
    if isinstance(c.value, float) and (n := as_number(have)) is not None:
        left, right = n, c.value
    elif isinstance(c.value, float) and c.op not in ("=", "!="):
        return False
    else:
        left = have if isinstance(have, str) else f"{have:g}"
        right = c.value if isinstance(c.value, str) else c.raw or f"{c.value:g}"
    if c.op == "=":
        return left == right
    if c.op == "!=":
        return left != right
    assert isinstance(left, float) and isinstance(right, float)
    return {"<": left < right, "<=": left <= right, ">": left > right,
            ">=": left >= right}[c.op]


def matches(r: RunRecord, conditions: Iterable[Comparison]) -> bool:
    return all(holds(c, r) for c in conditions)
