"""One error hierarchy; the CLI's single handler turns these into one clear message each.

Expected failures (bad input, unreachable host, failed health) are `HostctlError`s and exit
non-zero without a traceback. Anything else is a bug and is reported as such.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# What must not reach a terminal as is: control characters (an ESC starts a terminal command,
# a newline fakes another message), line and paragraph separators, bidirectional overrides
# (they reorder what is shown), and the surrogates Python uses for file-name bytes that are not
# UTF-8 (they cannot even be printed).
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
                          "\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if char in _NAMED:
        return _NAMED[char]
    if 0xDC80 <= code <= 0xDCFF:  # a byte of a file name that is not UTF-8
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` with every character that could act on a terminal written as an escape (`\\x1b`,
    `\\n`, `\\u202e`), so a file name or value in a message shows as what it is."""
    return _UNPRINTABLE.sub(_escape, text) if _UNPRINTABLE.search(text) else text


class HostctlError(Exception):
    """An expected failure with a message meant for the operator."""

    exit_code = 1


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with the input, located as precisely as we can."""

    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        text = f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"
        return printable(text)

    def shown(self) -> dict[str, object]:
        """The fields as `--json` gives them: escaped as on the terminal, so the two agree and
        a consumer that prints a message prints no terminal command."""
        return {"file": printable(self.file), "line": self.line, "path": printable(self.path),
                "message": printable(self.message)}


@dataclass(frozen=True)
class Source:
    """Where a value came from: file, line and key path, for messages."""

    file: str
    line: int
    path: str

    def problem(self, message: str) -> Problem:
        return Problem(self.file, self.line, self.path, message)


class ConfigError(HostctlError):
    """The inventory or a spec is invalid. Carries every problem found, not only the first."""

    exit_code = 2

    def __init__(self, problems: Iterable[Problem]):
        self.problems = sorted(set(problems))
        super().__init__("\n".join(str(p) for p in self.problems))
