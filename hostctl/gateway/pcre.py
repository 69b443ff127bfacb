"""Regexes Kong compiles with PCRE2 (CORS origins, regex route paths), checked from Python.

Two answers:
- `pcre2_error`: what PCRE2 itself says, through libpcre2-8 (ctypes), the library Kong's
  OpenResty links; None when it compiles, NOT_AVAILABLE where the library cannot be loaded
  (Debian's grep depends on it, so it nearly always is there);
- `portable_error`: hostctl's own, conservative rule for what a spec may hold: only the part of
  regex syntax that Python's `re` and PCRE2 read alike (literals, escaped punctuation, `.`,
  `^ $ |`, classes, plain and `(?:` groups, `* + ? {n,m}` and their lazy forms, `\\d \\w \\s
  \\b`), and that Python then compiles. Everything else (lookarounds, back references, flags,
  `{,n}`, `\\x`/`\\u` escapes, control and non-ASCII characters...) is refused with a hint,
  so `validate` answers the same on every machine and never accepts what Kong refuses.

`compile_error` is what `kong_schema` uses: PCRE2's answer, or the portable rule without it.
"""

from __future__ import annotations

import ctypes
import functools
import re
import string
from typing import Any

NOT_AVAILABLE: Any = object()
MAX_LENGTH = 1000
MAX_REPEAT = 65535  # PCRE2 refuses larger {n,m} counts; Python allows them
MAX_DEPTH = 50
_PUNCTUATION = set(string.punctuation)
_CLASS_ESCAPES = set("dDwWsS")
_ESCAPES = _CLASS_ESCAPES | set("bB")


@functools.cache
def _lib() -> Any:
    try:
        lib = ctypes.CDLL("libpcre2-8.so.0")
    except OSError:
        return None
    lib.pcre2_compile_8.restype = ctypes.c_void_p
    lib.pcre2_compile_8.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint32,
                                    ctypes.POINTER(ctypes.c_int),
                                    ctypes.POINTER(ctypes.c_size_t), ctypes.c_void_p]
    lib.pcre2_code_free_8.argtypes = [ctypes.c_void_p]
    lib.pcre2_code_free_8.restype = None
    lib.pcre2_get_error_message_8.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t]
    lib.pcre2_get_error_message_8.restype = ctypes.c_int
    return lib


def pcre2_error(pattern: str) -> Any:
    """None when PCRE2 compiles `pattern` (no options, as `ngx.re` without flags does), its
    message (worded as OpenResty reports it) when not, NOT_AVAILABLE without libpcre2-8."""
    lib = _lib()
    if lib is None:
        return NOT_AVAILABLE
    raw = pattern.encode("utf-8", "surrogatepass")
    code, offset = ctypes.c_int(0), ctypes.c_size_t(0)
    compiled = lib.pcre2_compile_8(raw, len(raw), 0, ctypes.byref(code), ctypes.byref(offset),
                                   None)
    if compiled:
        lib.pcre2_code_free_8(compiled)
        return None
    buffer = ctypes.create_string_buffer(256)
    lib.pcre2_get_error_message_8(code.value, buffer, len(buffer))
    return f'pcre2_compile() failed: {buffer.value.decode()} in "{pattern}"'


def compile_error(pattern: str) -> str | None:
    """PCRE2's refusal of `pattern`, or hostctl's portable one where PCRE2 is not loadable."""
    answer = pcre2_error(pattern)
    return portable_error(pattern) if answer is NOT_AVAILABLE else answer


def portable_error(pattern: str) -> str | None:
    """None when `pattern` keeps to the syntax Python and PCRE2 share and compiles; else
    what is wrong and how to write it instead."""
    if len(pattern) > MAX_LENGTH:
        return f"is longer than {MAX_LENGTH} characters"
    problem = _Scan(pattern).run()
    if problem is not None:
        return problem
    try:
        re.compile(pattern)
    except re.error as e:
        return f"is not a valid regex ({e.msg} at position {e.pos})"
    except (OverflowError, RecursionError):
        return "is too large a regex"
    return None


class _Scan:
    def __init__(self, pattern: str):
        self.p, self.i = pattern, 0
        self.repeatable = False  # may a quantifier follow?
        self.depth = 0

    def run(self) -> str | None:
        while self.i < len(self.p):
            problem = self.step()
            if problem is not None:
                return problem
        return None

    def step(self) -> str | None:
        c = self.p[self.i]
        if ord(c) < 0x20 or ord(c) > 0x7e:
            return (f"has the character {c!r} at position {self.i}: use printable ASCII "
                    "(PCRE reads other characters byte by byte)")
        if c == "\\":
            return self.escape(_ESCAPES)
        if c == "[":
            return self.char_class()
        if c == "(":
            if self.p.startswith("(?", self.i) and not self.p.startswith("(?:", self.i):
                return (f"has '{self.p[self.i:self.i + 3]}' at position {self.i}: only plain "
                        "groups (...) and (?:...) mean the same to Python and Kong's PCRE")
            self.i += 3 if self.p.startswith("(?:", self.i) else 1
            self.depth += 1
            if self.depth > MAX_DEPTH:
                return f"nests groups deeper than {MAX_DEPTH}"
            self.repeatable = False
            return None
        if c == ")":
            self.depth -= 1
            self.i += 1
            self.repeatable = True
            return None
        if c in "*+?{":
            return self.quantifier()
        if c in "}]":
            return f"has a lone '{c}' at position {self.i}: write it as '\\{c}'"
        self.i += 1
        self.repeatable = c not in "^$|"
        return None

    def escape(self, allowed: set[str]) -> str | None:
        if self.i + 1 >= len(self.p):
            return "ends with a lone '\\': write a literal backslash as '\\\\'"
        e = self.p[self.i + 1]
        if e not in allowed and e not in _PUNCTUATION:
            return (f"has '\\{e}' at position {self.i}: Python and Kong's PCRE read it "
                    "differently; escape only punctuation, or use "
                    + ("\\d \\w \\s" if allowed is _CLASS_ESCAPES else "\\d \\w \\s \\b"))
        self.i += 2
        self.repeatable = e not in "bB"
        return None

    def char_class(self) -> str | None:
        start = self.i
        self.i += 1
        posix = self._posix_look_alike(start)
        if posix is not None:
            return posix
        if self.p.startswith("^", self.i):
            self.i += 1
        if self.p.startswith("]", self.i):
            return f"has a class starting with ']' at position {start}: write it as '\\]'"
        while self.i < len(self.p):
            c = self.p[self.i]
            if c == "]":
                self.i += 1
                self.repeatable = True
                return None
            if ord(c) < 0x20 or ord(c) > 0x7e:
                return (f"has the character {c!r} at position {self.i}: use printable ASCII "
                        "(PCRE reads other characters byte by byte)")
            if c == "[" or self.p[self.i:self.i + 2] in ("--", "&&", "~~", "||"):
                return (f"has '{self.p[self.i:self.i + 2]}' in a class at position {self.i}: "
                        "escape it with '\\'")
            if c == "\\":
                problem = self.escape(_CLASS_ESCAPES)
                if problem is not None:
                    return problem
                continue
            self.i += 1
        return f"has a class '[' at position {start} that is never closed with ']'"

    def _posix_look_alike(self, start: int) -> str | None:
        """PCRE2 reads `[:...:]`, `[.....]` and `[=...=]` (two characters or more between
        the brackets) as a POSIX class or collating element, refused outside a class;
        Python reads a plain class."""
        first = self.p[start + 1:start + 2]
        end = self.p.find("]", start + 2)
        if first and first in ":.=" and end > start + 2 and self.p[end - 1] == first:
            return (f"has '{self.p[start:end + 1]}' at position {start}, which Kong's PCRE "
                    f"reads as a POSIX class or collating element: do not start and end a "
                    f"class with '{first}'")
        return None

    def quantifier(self) -> str | None:
        at = self.i
        if not self.repeatable:
            return f"has '{self.p[at]}' at position {at} with nothing before it to repeat"
        if self.p[at] == "{":
            m = re.compile(r"\{([0-9]+)(?:,([0-9]*))?\}").match(self.p, at)
            if m is None:
                return (f"has '{{' at position {at} that is not a count {{n}}, {{n,}} or "
                        "{n,m}: write a literal brace as '\\{'")
            if any(int(g) > MAX_REPEAT for g in m.groups() if g):
                return f"has a count above {MAX_REPEAT} at position {at}"
            self.i = m.end()
        else:
            self.i += 1
        if self.p.startswith("?", self.i):
            self.i += 1  # lazy
        if self.i < len(self.p) and self.p[self.i] in "*+?{":
            return (f"has '{self.p[at:self.i + 1]}' at position {at}: one quantifier at a time "
                    "(possessive and stacked quantifiers differ between Python and PCRE)")
        self.repeatable = False
        return None
