"""One error hierarchy; the CLI's single handler turns these into one clear message each.

Expected failures (bad input, unreachable host, failed health) are `HostctlError`s and exit
non-zero without a traceback. Anything else is a bug and is reported as such.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


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
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


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
