"""systemd calendar expressions (`OnCalendar=`), parsed and normalized as systemd 252 does.

The grammar and every check follow `calendar_spec_from_string()` and its helpers in systemd's
src/shared/calendarspec.c (v252): optional weekdays, an optional date `Y-M-D` or `M-D` (`~`
instead of the last `-` counts days back from the month's end), an optional time `H:M[:S]`
with fractional seconds, then an optional ` UTC` or IANA timezone; or a shorthand such as
`daily`. Components are `*`, values, `a..b` ranges, `/n` repetitions and `,` lists.
`normalized()` prints the "Normalized form" that `systemd-analyze calendar` shows.
tests/test_systemd_calendar.py checks both against the real systemd-analyze.

Differences from systemd, on purpose, because hostctl validates on a machine that is not the
target host:
- Timezones: systemd accepts a name when /usr/share/zoneinfo/NAME is a tz file on the host
  that loads the unit. `parse_calendar` takes the known names as an argument; without it, a
  name is accepted when it is shaped like an IANA zone (`Area/Location` with a known area
  such as `Europe`, or one of the few top-level zone names such as `EST` or `Japan`); a typo
  in the location is then only caught on the host.
- systemd also accepts the *host's* local zone abbreviations (`CET` on a Berlin host). Those
  depend on the host and are not recognized unless they are zone names too.
- `@-N` is refused outright; systemd's strtoul() wraps it around to a huge number, which
  mostly lands before 1970 and is refused too.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NoReturn

USEC_PER_SEC = 1_000_000
_INT_MAX = 2**31 - 1
_ULONG_MAX = 2**64 - 1
_TIME_T_MAX = 2**63 - 1
MIN_YEAR = 1970
MAX_YEAR = 2199
# calendarspec.c refuses chains of more than 241 components (CALENDARSPEC_COMPONENTS_MAX).
MAX_COMPONENTS = 241

WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
# Longer names first, as in parse_weekdays(): "Monday" must win over "Mon".
_WEEKDAY_WORDS = (
    ("Monday", 0), ("Mon", 0), ("Tuesday", 1), ("Tue", 1), ("Wednesday", 2), ("Wed", 2),
    ("Thursday", 3), ("Thu", 3), ("Friday", 4), ("Fri", 4), ("Saturday", 5), ("Sat", 5),
    ("Sunday", 6), ("Sun", 6),
)  # fmt: skip

# Without a list of known zones, a name counts as a zone when it is shaped like one: an IANA
# area and a location (Europe/Berlin, Etc/GMT+5), or one of the top-level names of tzdata.
# fmt: off
_ZONE_AREAS = frozenset({
    "Africa", "America", "Antarctica", "Arctic", "Asia", "Atlantic", "Australia", "Brazil",
    "Canada", "Chile", "Etc", "Europe", "Indian", "Mexico", "Pacific", "US",
})
_TOP_LEVEL_ZONES = frozenset({
    "CET", "CST6CDT", "Cuba", "EET", "EST", "EST5EDT", "Egypt", "Eire", "Factory", "GB",
    "GB-Eire", "GMT", "GMT+0", "GMT-0", "GMT0", "Greenwich", "HST", "Hongkong", "Iceland", "Iran",
    "Israel", "Jamaica", "Japan", "Kwajalein", "Libya", "MET", "MST", "MST7MDT", "NZ", "NZ-CHAT",
    "Navajo", "PRC", "PST8PDT", "Poland", "Portugal", "ROC", "ROK", "Singapore", "Turkey", "UCT",
    "UTC", "Universal", "W-SU", "WET", "Zulu",
})
# fmt: on


class CalendarError(ValueError):
    """The expression is not a valid systemd calendar expression; the message says why."""


@dataclass(frozen=True, order=True)
class CalendarComponent:
    """One element of a field: `start`, `start..stop`, `start/repeat` or `start..stop/repeat`.

    Seconds are counted in microseconds, like systemd. A range without `/` repeats by 1 unit.
    """

    start: int
    stop: int | None = None
    repeat: int = 0


Chain = tuple[CalendarComponent, ...]


@dataclass(frozen=True)
class CalendarSpec:
    """A parsed, normalized calendar expression. A field that is None matches everything."""

    weekdays: frozenset[int] | None  # 0 = Monday ... 6 = Sunday
    year: Chain | None
    month: Chain | None
    day: Chain | None
    hour: Chain | None
    minute: Chain | None
    microsecond: Chain | None  # the seconds field, in microseconds
    end_of_month: bool = False  # `~`: day counts back from the last day of the month
    utc: bool = False
    timezone: str | None = None


def parse_calendar(expr: str, *, timezones: Collection[str] | None = None) -> CalendarSpec:
    """Parse and normalize `expr`; raise CalendarError with a human message if systemd would not.

    `timezones`: the zone names the target hosts know (e.g. zoneinfo.available_timezones());
    None accepts any name shaped like an IANA zone.
    """
    text, utc, timezone = _split_timezone(expr, timezones)
    if not text:
        raise CalendarError(
            "the expression is empty" if not expr else "nothing before the timezone"
        )
    builder = _SHORTHANDS.get(text.lower())
    try:
        fields = builder() if builder else _Parser(text).parse()
    except CalendarError as error:
        raise CalendarError(_explain(expr, timezones, str(error))) from None
    if timezone == "UTC":  # calendar_spec_normalize()
        utc, timezone = True, None
    return _normalize_and_check(fields, utc or fields.utc, timezone)


_CRON_FIELD = re.compile(r"[0-9*/,?A-Za-z-]+")


def _explain(expr: str, timezones: Collection[str] | None, message: str) -> str:
    """Say what was probably meant when the parse failed on a common mistake."""
    fields = expr.split()
    if len(fields) in (5, 6) and all(_CRON_FIELD.fullmatch(f) for f in fields):
        return (
            "this looks like a cron schedule (minute hour day month weekday); systemd reads "
            "'[weekdays] [year-]month-day [hour:minute[:second]]'"
        )
    _, space, last = expr.rpartition(" ")
    if space and "/" in last and last[:1].isalpha():
        known = "the given zone list" if timezones is not None else "the IANA zone areas"
        return f"unknown timezone '{last}' (not in {known})"
    return message


def normalized(spec: CalendarSpec) -> str:
    """The expression as `systemd-analyze calendar` prints its "Normalized form"."""
    parts = []
    if spec.weekdays is not None:
        parts.append(_format_weekdays(spec.weekdays) + " ")
    parts += [
        _format_chain(spec.year, 4),
        "-",
        _format_chain(spec.month, 2),
        "~" if spec.end_of_month else "-",
        _format_chain(spec.day, 2),
        " ",
        _format_chain(spec.hour, 2),
        ":",
        _format_chain(spec.minute, 2),
        ":",
        _format_seconds(spec.microsecond),
    ]
    if spec.utc:
        parts.append(" UTC")
    elif spec.timezone:
        parts.append(" " + spec.timezone)
    return "".join(parts)


def to_cron(spec: CalendarSpec) -> str | None:
    """The 5-field cron schedule firing at exactly the same times, or None if there is none.

    None when the spec needs what cron cannot say: seconds other than exactly 0, a year, `~`
    (days from the month's end), or a named timezone. Also None when both the day of month and
    the weekday are restricted: cron fires when *either* matches, systemd when both do.
    A ` UTC` spec gives the same fields; the caller must then run the cron job in UTC (e.g.
    Kubernetes CronJob `timeZone: Etc/UTC`), since cron reads schedules in its own local time.
    Times skipped or repeated by daylight saving changes are handled differently by each cron
    implementation and by systemd.
    """
    if spec.year is not None or spec.end_of_month or spec.timezone is not None:
        return None
    if spec.microsecond != (CalendarComponent(0),):
        return None
    if spec.day is not None and spec.weekdays is not None:
        return None
    return " ".join(
        [
            _cron_field(spec.minute, 0, 59),
            _cron_field(spec.hour, 0, 23),
            _cron_field(spec.day, 1, 31),
            _cron_field(spec.month, 1, 12),
            _cron_weekdays(spec.weekdays),
        ]
    )


# --- parsing ----------------------------------------------------------------------------------


@dataclass
class _Fields:
    """Mutable parse result, before normalization (stop = -1 means none, as in systemd)."""

    weekdays_bits: int = 0
    year: list[list[int]] | None = None
    month: list[list[int]] | None = None
    day: list[list[int]] | None = None
    hour: list[list[int]] | None = None
    minute: list[list[int]] | None = None
    microsecond: list[list[int]] | None = None
    end_of_month: bool = False
    utc: bool = False


def _const(value: int) -> list[list[int]]:
    return [[value, -1, 0]]


def _shorthand(
    *,
    months: tuple[int, ...] = (),
    day: int | None = None,
    hour: int | None = None,
    minute: int | None = None,
    weekly: bool = False,
) -> Callable[[], _Fields]:
    """The fixed fields calendar_spec_from_string() sets for a shorthand like "daily"."""

    def build() -> _Fields:
        return _Fields(
            weekdays_bits=1 if weekly else 0,  # Monday
            month=[[m, -1, 0] for m in months] or None,
            day=None if day is None else _const(day),
            hour=None if hour is None else _const(hour),
            minute=None if minute is None else _const(minute),
            microsecond=_const(0),
        )

    return build


_YEARLY = _shorthand(months=(1,), day=1, hour=0, minute=0)
_SEMIANNUALLY = _shorthand(months=(1, 7), day=1, hour=0, minute=0)
_SHORTHANDS: dict[str, Callable[[], _Fields]] = {
    "minutely": _shorthand(),
    "hourly": _shorthand(minute=0),
    "daily": _shorthand(hour=0, minute=0),
    "weekly": _shorthand(weekly=True, hour=0, minute=0),
    "monthly": _shorthand(day=1, hour=0, minute=0),
    "quarterly": _shorthand(months=(1, 4, 7, 10), day=1, hour=0, minute=0),
    "annually": _YEARLY,
    "yearly": _YEARLY,
    "anually": _YEARLY,  # systemd keeps this misspelling for backwards compatibility
    "semiannually": _SEMIANNUALLY,
    "semi-annually": _SEMIANNUALLY,
    "biannually": _SEMIANNUALLY,
    "bi-annually": _SEMIANNUALLY,
}


def _split_timezone(expr: str, timezones: Collection[str] | None) -> tuple[str, bool, str | None]:
    """Take a trailing ` UTC` (any case) or ` ZONE` off the expression."""
    if expr[-4:].lower() == " utc":
        return expr[:-4], True, None
    head, space, last = expr.rpartition(" ")
    if space and _timezone_is_valid(last, timezones):
        return head, False, last
    return expr, False, None


def _timezone_is_valid(name: str, timezones: Collection[str] | None) -> bool:
    """timezone_is_valid() in src/basic/time-util.c, with the tz file check replaced."""
    if name == "UTC":
        return True
    if not name or name.startswith("/") or name.endswith("/") or "//" in name:
        return False
    if any(not (c.isascii() and (c.isalnum() or c in "-_+/")) for c in name):
        return False
    if timezones is not None:
        return name in timezones
    return name.partition("/")[0] in _ZONE_AREAS or name in _TOP_LEVEL_ZONES


class _Parser:
    """The date and time grammar, following parse_weekdays/parse_date/parse_calendar_time."""

    def __init__(self, text: str):
        self.text = text
        self.pos = 0
        self.fields = _Fields()

    def parse(self) -> _Fields:
        self._weekdays()
        if not self._date():
            self._time()
        if self.pos < len(self.text):
            self._fail("unexpected text")
        return self.fields

    # helpers

    def _peek(self, offset: int = 0) -> str:
        index = self.pos + offset
        return self.text[index] if index < len(self.text) else ""

    def _fail(self, what: str) -> NoReturn:
        rest = self.text[self.pos :]
        where = f"at '{rest}'" if rest else "at the end"
        raise CalendarError(f"{what} {where} (position {self.pos + 1})")

    def _skip_spaces(self) -> None:
        while self._peek() == " ":
            self.pos += 1

    # weekdays

    def _weekdays(self) -> None:
        range_start = -1
        first = True
        while True:
            rest = self.text[self.pos :].lower()
            match = next(((w, i) for w, i in _WEEKDAY_WORDS if rest.startswith(w.lower())), None)
            if match is None:
                if first:
                    return  # no weekday: the expression starts with the date or time
                self._fail("expected a weekday")
            word, day = match
            if self.text[self.pos + len(word) : self.pos + len(word) + 1] not in (
                "",
                "-",
                ".",
                ",",
                " ",
            ):
                self._fail("unknown weekday")
            self.fields.weekdays_bits |= 1 << day
            if range_start >= 0:
                if range_start > day:
                    self._fail(
                        f"weekday range ends before it starts ({WEEKDAY_NAMES[range_start]}..)"
                    )
                for between in range(range_start + 1, day):
                    self.fields.weekdays_bits |= 1 << between
            self.pos += len(word)
            char = self._peek()
            if char == "":
                return
            if char == " ":
                self._skip_spaces()
                return
            if char == ".":
                if range_start >= 0:
                    self._fail("a weekday range cannot continue into another range")
                if self._peek(1) != ".":
                    self._fail("expected '..' for a weekday range")
                range_start = day
                self.pos += 2
            elif char == "-":  # "Mon-Fri" is the old spelling of "Mon..Fri"
                if range_start >= 0:
                    self._fail("a weekday range cannot continue into another range")
                range_start = day
                self.pos += 1
            elif char == ",":
                range_start = -1
                self.pos += 1
            if self._peek() in ("", " "):  # a trailing comma is fine, an open range is not
                if range_start >= 0:
                    self._fail("weekday range without an end")
                self._skip_spaces()
                return
            first = False

    # date

    def _date(self) -> bool:
        """Parse the date; True when a @TIMESTAMP already set the time as well."""
        if self.pos >= len(self.text):
            return False
        if self._peek() == "@":
            self._timestamp()
            return True
        start = self.pos
        first = self._chain(usec=False, field="date or time")
        if self._peek() in ("", ":"):
            self.pos = start  # it was the hour: no date
            return False
        self._date_separator()
        second = self._chain(usec=False, field="month or day")
        if self._peek() in ("", " "):
            self._skip_spaces()
            self.fields.month, self.fields.day = first, second
            return False
        if self.fields.end_of_month:
            self._fail("'~' may only stand before the day")
        self._date_separator()
        third = self._chain(usec=False, field="day")
        if self._peek() not in ("", " "):
            self._fail("expected a space between the date and the time")
        self._skip_spaces()
        self.fields.year, self.fields.month, self.fields.day = first, second, third
        return False

    def _date_separator(self) -> None:
        if self._peek() == "~":
            self.fields.end_of_month = True
        elif self._peek() != "-":
            self._fail("expected '-' or '~' in the date")
        self.pos += 1

    def _timestamp(self) -> None:
        self.pos += 1
        # strtoul() skips leading blanks and takes a '+'. A '-' would wrap around to a huge
        # number; systemd then ends up before 1970 and refuses it, and so do we, directly.
        while self._peek() and self._peek() in " \t\n\v\f\r":
            self.pos += 1
        if self._peek() == "+":
            self.pos += 1
        digits = self._digits()
        if not digits:
            self._fail("expected seconds since the epoch after '@'")
        value = int(digits)
        if value > _TIME_T_MAX:
            raise CalendarError(f"timestamp @{digits} is out of range")
        try:
            tm = time.gmtime(value)
        except (OverflowError, OSError, ValueError):
            raise CalendarError(f"timestamp @{digits} is out of range") from None
        f = self.fields
        f.year, f.month, f.day = _const(tm.tm_year), _const(tm.tm_mon), _const(tm.tm_mday)
        f.hour, f.minute = _const(tm.tm_hour), _const(tm.tm_min)
        f.microsecond = _const(tm.tm_sec * USEC_PER_SEC)
        f.utc = True

    # time

    def _time(self) -> None:
        f = self.fields
        if self.pos >= len(self.text):  # no time at all means midnight
            f.hour, f.minute, f.microsecond = _const(0), _const(0), _const(0)
            return
        f.hour = self._chain(usec=False, field="hour")
        if self._peek() != ":":
            self._fail("expected ':' after the hour")
        self.pos += 1
        f.minute = self._chain(usec=False, field="minute")
        if self.pos >= len(self.text):
            f.microsecond = _const(0)
            return
        if self._peek() != ":":
            self._fail("expected ':' after the minute")
        self.pos += 1
        f.microsecond = self._chain(usec=True, field="second")
        if self.pos < len(self.text):
            self._fail("unexpected text after the time")

    # components

    def _chain(self, *, usec: bool, field: str) -> list[list[int]] | None:
        if self._peek() == "*":
            self.pos += 1
            return [[0, -1, USEC_PER_SEC]] if usec else None
        chain: list[list[int]] = []
        while True:
            if len(chain) == MAX_COMPONENTS:
                raise CalendarError(f"more than {MAX_COMPONENTS} values in one {field} list")
            chain.append(self._component(usec, field))
            if self._peek() != ",":
                return chain
            self.pos += 1

    def _component(self, usec: bool, field: str) -> list[int]:
        start = self._decimal(usec, field)
        stop, repeat = -1, 0
        if self.text.startswith("..", self.pos):
            self.pos += 2
            stop = self._decimal(usec, field)
            repeat = USEC_PER_SEC if usec else 1
        if self._peek() == "/":
            self.pos += 1
            repeat = self._decimal(usec, field)
            if repeat == 0:
                raise CalendarError(f"the {field} repetition /0 never advances")
        elif start > _INT_MAX - repeat:
            raise CalendarError(f"the {field} range is out of range")
        elif usec and stop >= 0 and start + repeat > stop:
            # Without a repetition the range steps by whole seconds: it must hold two.
            raise CalendarError(f"the {field} range is shorter than one second")
        if self._peek() not in ("", " ", ",", "-", "~", ":"):
            self._fail(f"unexpected character in the {field}")
        return [start, stop, repeat]

    def _digits(self) -> str:
        start = self.pos
        while self._peek() and self._peek() in "0123456789":
            self.pos += 1
        return self.text[start : self.pos]

    def _decimal(self, usec: bool, field: str) -> int:
        """parse_component_decimal(): digits, and for seconds a fraction of up to 6 digits."""
        digits = self._digits()
        if not digits:
            self._fail(f"expected a number or '*' for the {field}")
        value = int(digits)
        if value > _ULONG_MAX or (usec and value * USEC_PER_SEC > _ULONG_MAX):
            raise CalendarError(f"the {field} {digits} is out of range")
        if usec:
            value *= USEC_PER_SEC
            # One "." is a decimal point, ".." starts a range.
            if self._peek() == "." and self._peek(1) != ".":
                self.pos += 1
                value += self._fraction(field)
        if value > _INT_MAX:
            raise CalendarError(f"the {field} {digits} is out of range")
        return value

    def _fraction(self, field: str) -> int:
        """parse_fractional_part_u(..., 6, ...): microseconds, rounded on the 7th digit."""
        digits = self._digits()
        if not digits:
            self._fail(f"expected digits after the decimal point in the {field}")
        value = int(digits[:6].ljust(6, "0"))
        if len(digits) > 6 and digits[6] >= "5":
            value += 1
        return value


# --- normalization and validity -----------------------------------------------------------

_FIELDS = (
    # name, lowest, highest, in microseconds
    ("year", MIN_YEAR, MAX_YEAR, False),
    ("month", 1, 12, False),
    ("day", 1, 31, False),
    ("hour", 0, 23, False),
    ("minute", 0, 59, False),
    ("microsecond", 0, 60 * USEC_PER_SEC - 1, True),
)


def _normalize_and_check(fields: _Fields, utc: bool, timezone: str | None) -> CalendarSpec:
    """calendar_spec_normalize() then calendar_spec_valid()."""
    bits = fields.weekdays_bits
    weekdays = (
        None if bits <= 0 or bits >= 0x7F else frozenset(d for d in range(7) if bits >> d & 1)
    )
    end_of_month = fields.end_of_month and fields.day is not None
    if fields.year is not None:
        for component in fields.year:  # 12 -> 2012, 89 -> 1989
            for i in (0, 1):
                if 0 <= component[i] < 70:
                    component[i] += 2000
                elif 70 <= component[i] < 100:
                    component[i] += 1900
    chains: dict[str, Chain | None] = {}
    for name, lowest, highest, usec in _FIELDS:
        raw = getattr(fields, name)
        chain = None if raw is None else _normalize_chain(raw)
        if chain is not None:
            _check_chain(chain, name, lowest, highest, usec, end_of_month and name == "day")
        chains[name] = chain
    return CalendarSpec(
        weekdays=weekdays,
        year=chains["year"],
        month=chains["month"],
        day=chains["day"],
        hour=chains["hour"],
        minute=chains["minute"],
        microsecond=chains["microsecond"],
        end_of_month=end_of_month,
        utc=utc,
        timezone=timezone,
    )


def _normalize_chain(raw: list[list[int]]) -> Chain:
    """normalize_chain(): trim ranges to whole repetitions, drop useless ones, sort, dedupe."""
    items = []
    for start, stop, repeat in raw:
        if stop > start and repeat > 0:
            stop -= (stop - start) % repeat
        if (stop > start and repeat > 0 and start + repeat > stop) or start == stop:
            stop, repeat = -1, 0
        items.append((start, stop, repeat))
    return tuple(
        CalendarComponent(start, None if stop < 0 else stop, repeat)
        for start, stop, repeat in sorted(set(items))
    )


_UNIT = {"microsecond": "second", "year": "year", "month": "month", "day": "day"}


def _check_chain(
    chain: Chain, name: str, lowest: int, highest: int, usec: bool, end_of_month: bool
) -> None:
    """chain_valid(), with a message saying which value is wrong and why."""
    field = _UNIT.get(name, name)

    def show(value: int) -> str:
        return _format_number(value, 2, usec)

    def every(value: int) -> str:
        return _format_number(value, 1, usec)

    for index, c in enumerate(chain):
        # '~' counts back at most 28 days, so that every month has the day. systemd 252
        # subtracts those 3 days again for every further list element (chain_valid()
        # recurses with the reduced limit): "*-*~7,26" is refused, "*-*~7,25" is not.
        top = highest - 3 * (index + 1) if end_of_month else highest
        span = f"{show(lowest)}..{show(top)}"
        stop = -1 if c.stop is None else c.stop
        if not lowest <= c.start <= top:
            if end_of_month:
                raise CalendarError(
                    f"day ~{show(c.start)}: with '~', element {index + 1} of the day list "
                    f"must count back {span} days from the month's end"
                )
            raise CalendarError(f"{field} {show(c.start)} is out of range {span}")
        if c.repeat > top - lowest:
            raise CalendarError(f"{field} repetition /{every(c.repeat)} is longer than {span}")
        if stop >= 0:
            if not lowest <= stop <= top:
                if end_of_month:
                    raise CalendarError(
                        f"day ~{show(stop)}: with '~', element {index + 1} of the day list "
                        f"must count back {span} days from the month's end"
                    )
                raise CalendarError(f"{field} {show(stop)} is out of range {span}")
            if c.start + c.repeat > stop:
                raise CalendarError(
                    f"{field} range {show(c.start)}..{show(stop)} ends before it starts"
                )
        elif end_of_month and c.start - c.repeat < lowest:
            raise CalendarError(f"day ~{show(c.start)}/{every(c.repeat)} never repeats")
        elif not end_of_month and c.start + c.repeat > top:
            raise CalendarError(
                f"{field} {show(c.start)}/{every(c.repeat)} never repeats within {span}"
            )


# --- formatting -------------------------------------------------------------------------------


def _format_weekdays(days: frozenset[int]) -> str:
    """format_weekdays(): runs of three or more days as 'A..B', shorter runs listed."""
    out: list[str] = []
    day = 0
    while day < 7:
        if day not in days:
            day += 1
            continue
        end = day
        while end + 1 < 7 and end + 1 in days:
            end += 1
        if end - day >= 2:
            out.append(f"{WEEKDAY_NAMES[day]}..{WEEKDAY_NAMES[end]}")
        else:
            out.extend(WEEKDAY_NAMES[d] for d in range(day, end + 1))
        day = end + 1
    return ",".join(out)


def _format_number(value: int, width: int, usec: bool) -> str:
    unit = USEC_PER_SEC if usec else 1
    text = f"{value // unit:0{width}d}"
    if value % unit:
        text += f".{value % unit:06d}"
    return text


def _format_chain(chain: Chain | None, width: int, usec: bool = False) -> str:
    """format_chain() for one field."""
    if chain is None:
        return "*"
    unit = USEC_PER_SEC if usec else 1
    parts = []
    for c in chain:
        text = _format_number(c.start, width, usec)
        if c.stop is not None and c.stop > 0:
            text += ".." + _format_number(c.stop, width, usec)
        if c.repeat > 0 and not (c.stop is not None and c.stop > 0 and c.repeat == unit):
            text += f"/{c.repeat // unit}"
            if c.repeat % unit:
                text += f".{c.repeat % unit:06d}"
        parts.append(text)
    return ",".join(parts)


def _format_seconds(chain: Chain | None) -> str:
    # systemd 252 prints '*' whenever the first seconds component is 0/1, whatever follows
    # ("*:*:0/1,5" shows as "*:*:*"; later versions check that nothing follows).
    if chain and chain[0] == CalendarComponent(0, None, USEC_PER_SEC):
        return "*"
    return _format_chain(chain, 2, usec=True)


# --- cron -------------------------------------------------------------------------------------


def _cron_field(chain: Chain | None, lowest: int, highest: int) -> str:
    if chain is None:
        return "*"
    parts = []
    for c in chain:
        if c.stop is not None:
            text = f"{c.start}-{c.stop}"
            parts.append(text if c.repeat == 1 else f"{text}/{c.repeat}")
        elif c.repeat:
            # "a/n" is not portable cron; "*/n" and "a-b/n" are.
            head = "*" if c.start == lowest else f"{c.start}-{highest}"
            parts.append(f"{head}/{c.repeat}")
        else:
            parts.append(str(c.start))
    return ",".join(parts)


def _cron_weekdays(days: frozenset[int] | None) -> str:
    if days is None:
        return "*"
    numbers = sorted((d + 1) % 7 for d in days)  # cron: 0 = Sunday, 1 = Monday
    parts = []
    i = 0
    while i < len(numbers):
        j = i
        while j + 1 < len(numbers) and numbers[j + 1] == numbers[j] + 1:
            j += 1
        if j - i >= 2:
            parts.append(f"{numbers[i]}-{numbers[j]}")
        else:
            parts.extend(str(n) for n in numbers[i : j + 1])
        i = j + 1
    return ",".join(parts)


# --- the next elapse --------------------------------------------------------------------------

# find_next() gives up after this many rounds (MAX_CALENDAR_ITERATIONS): the timer never fires.
_MAX_ITERATIONS = 1000
_EPOCH = datetime(1970, 1, 1)
# How far apart two hosts' clocks can read the same instant (UTC-12 .. UTC+14), and more.
ZONE_ALLOWANCE_USEC = 26 * 3600 * USEC_PER_SEC


@dataclass
class _Tm:
    """`struct tm` as find_next() uses it: year in full, month 0..11, any value may overflow
    until _normalize() folds it, as timegm() does."""

    year: int
    mon: int
    mday: int
    hour: int = 0
    min: int = 0
    sec: int = 0

    def copy(self) -> _Tm:
        return _Tm(self.year, self.mon, self.mday, self.hour, self.min, self.sec)


def _seconds(tm: _Tm) -> int:
    year = tm.year + tm.mon // 12
    first = datetime(year, tm.mon % 12 + 1, 1)
    return ((first - _EPOCH).days + tm.mday - 1) * 86400 + tm.hour * 3600 + tm.min * 60 + tm.sec


def _from_seconds(seconds: int) -> _Tm:
    t = _EPOCH + timedelta(seconds=seconds)
    return _Tm(t.year, t.month - 1, t.day, t.hour, t.minute, t.second)


def _normalize(tm: _Tm) -> _Tm | None:
    """timegm() and back; None where mktime_or_timegm() fails (before 1970, or far out)."""
    try:
        seconds = _seconds(tm)
        return _from_seconds(seconds) if seconds >= 0 else None
    except (OverflowError, ValueError):
        return None


def _end_of_month(tm: _Tm, day: int) -> int:
    """find_end_of_month(): `~day` as a day of tm's month, or -1."""
    t = _normalize(_Tm(tm.year, tm.mon + 1, 1 - day, tm.hour, tm.min, tm.sec))
    return -1 if t is None or t.mon != tm.mon % 12 else t.mday


def _matching(spec: CalendarSpec, chain: Chain | None, tm: _Tm, value: int,
              is_day: bool = False) -> tuple[int, int]:
    """find_matching_component(): (-1 none, 0 unchanged, 1 changed; the earliest value)."""
    if chain is None:
        return 0, value
    best: int | None = None
    for c in chain:
        start, stop = c.start, -1 if c.stop is None else c.stop
        if spec.end_of_month and is_day:
            start, stop = _end_of_month(tm, start), _end_of_month(tm, stop)
            if stop > 0:
                start, stop = stop, start
        if start >= value:
            if best is None or start < best:
                best = start
        elif c.repeat > 0:
            k = start + c.repeat * -(-(value - start) // c.repeat)
            if (best is None or k < best) and (stop < 0 or k <= stop):
                best = k
    if best is None:
        return -1, value
    return int(best != value), best


def _within_bounds(tm: _Tm) -> int:
    """tm_within_bounds(): -1 out of range or backwards, 0 normalized (tm updated), 1 as is."""
    if tm.year > MAX_YEAR:
        return -1
    t = _normalize(tm)
    if t is None:
        return -1
    pairs = (("year", "mon"), ("mon", "mday"), ("mday", "hour"), ("hour", "min"),
             ("min", "sec"))
    cmp = 0
    for name, reset in pairs:
        cmp = (getattr(t, name) > getattr(tm, name)) - (getattr(t, name) < getattr(tm, name))
        if cmp:
            setattr(t, reset, 1 if reset == "mday" else 0)
            break
    else:
        cmp = (t.sec > tm.sec) - (t.sec < tm.sec)
    if cmp < 0:
        return -1
    if cmp > 0:
        tm.__dict__.update(t.__dict__)
    return int(cmp == 0)


def _find_next(spec: CalendarSpec, tm: _Tm, usec: int) -> tuple[_Tm, int] | None:
    """find_next() of calendarspec.c, computed in UTC (timegm)."""
    c = tm.copy()
    bits = None if spec.weekdays is None else sum(1 << d for d in spec.weekdays)
    for _ in range(_MAX_ITERATIONS):
        normal = _normalize(c)
        if normal is not None:
            c = normal
        r, c.year = _matching(spec, spec.year, c, c.year)
        if r > 0:
            c.mon, c.mday, c.hour, c.min, c.sec, usec = 0, 1, 0, 0, 0, 0
        if r < 0 or _within_bounds(c) <= 0:
            return None
        r, month = _matching(spec, spec.month, c, c.mon + 1)
        c.mon = month - 1
        if r > 0:
            c.mday, c.hour, c.min, c.sec, usec = 1, 0, 0, 0, 0
        if r < 0 or (r := _within_bounds(c)) < 0:
            c.year, c.mon, c.mday, c.hour, c.min, c.sec, usec = c.year + 1, 0, 1, 0, 0, 0, 0
            continue
        if r == 0:
            continue
        r, c.mday = _matching(spec, spec.day, c, c.mday, is_day=True)
        if r > 0:
            c.hour, c.min, c.sec, usec = 0, 0, 0, 0
        if r < 0 or (r := _within_bounds(c)) < 0:
            c.mon, c.mday, c.hour, c.min, c.sec, usec = c.mon + 1, 1, 0, 0, 0, 0
            continue
        if r == 0:
            continue
        day = _normalize(c)
        if bits is not None and (day is None or not bits >> _weekday(day) & 1):
            c.mday, c.hour, c.min, c.sec, usec = c.mday + 1, 0, 0, 0, 0
            continue
        r, c.hour = _matching(spec, spec.hour, c, c.hour)
        if r > 0:
            c.min, c.sec, usec = 0, 0, 0
        if r < 0 or (r := _within_bounds(c)) < 0:
            c.mday, c.hour, c.min, c.sec, usec = c.mday + 1, 0, 0, 0, 0
            continue
        if r == 0:
            continue
        r, c.min = _matching(spec, spec.minute, c, c.min)
        if r > 0:
            c.sec, usec = 0, 0
        if r < 0 or (r := _within_bounds(c)) < 0:
            c.hour, c.min, c.sec, usec = c.hour + 1, 0, 0, 0
            continue
        if r == 0:
            continue
        r, micro = _matching(spec, spec.microsecond, c, c.sec * USEC_PER_SEC + usec)
        c.sec, usec = divmod(micro, USEC_PER_SEC)
        if r < 0 or (r := _within_bounds(c)) < 0:
            c.min, c.sec, usec = c.min + 1, 0, 0
            continue
        if r == 0:
            continue
        return c, usec
    return None


def _weekday(tm: _Tm) -> int:
    return (datetime(tm.year, tm.mon + 1, tm.mday).weekday())  # 0 = Monday, as our bits


def next_elapse(spec: CalendarSpec, after_usec: int) -> int | None:
    """calendar_spec_next_usec(): the first time (µs since the epoch) after `after_usec`
    when the expression elapses, or None for never. Computed in UTC, whatever the
    expression's zone: the target host's zone is not known here."""
    usec = after_usec + 1
    found = _find_next(spec, _from_seconds(usec // USEC_PER_SEC), usec % USEC_PER_SEC)
    if found is None:
        return None
    tm, micro = found
    return _seconds(tm) * USEC_PER_SEC + micro


def never_fires(spec: CalendarSpec, now: float | None = None) -> bool:
    """True when a timer with this expression would never elapse again: a date that does not
    exist (`2024-02-30`), or that has passed. Outside UTC, a day's slack for the host's zone."""
    now_usec = int((time.time() if now is None else now) * USEC_PER_SEC)
    if not spec.utc:
        now_usec -= ZONE_ALLOWANCE_USEC
    return next_elapse(spec, now_usec) is None
