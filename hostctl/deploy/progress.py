"""Progress of a run: a live per-host table on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import click


class PlainProgress:
    """One line per event, for logs and CI."""

    def __init__(self, stream: IO[str]):
        self.stream = stream
        self.lock = threading.Lock()
        self.start = time.monotonic()

    def __call__(self, host: str, phase: str, detail: str) -> None:
        with self.lock:
            elapsed = time.monotonic() - self.start
            text = f"[{elapsed:6.1f}s] {host}: {phase}" + (f" — {detail}" if detail else "")
            click.echo(text, file=self.stream)


class LiveProgress:
    """A table that redraws in place: one row per host with its phase and detail."""

    def __init__(self, stream: IO[str]):
        # rich only for a terminal's live table: loaded here keeps start-up fast.
        from rich.console import Console

        self.console = Console(file=stream)
        self.rows: dict[str, tuple[str, str, float]] = {}
        self.lock = threading.Lock()
        self.start = time.monotonic()
        self.live: Any = None

    def __call__(self, host: str, phase: str, detail: str) -> None:
        with self.lock:
            self.rows[host] = (phase, detail, time.monotonic() - self.start)
            if self.live is not None:
                self.live.update(self._table())

    def _table(self) -> Any:
        from rich.table import Table  # loaded here keeps start-up fast

        table = Table(box=None, show_header=True, header_style="bold")
        table.add_column("host")
        table.add_column("phase")
        table.add_column("detail", overflow="fold")
        table.add_column("at", justify="right")
        for host, (phase, detail, at) in self.rows.items():
            table.add_row(host, phase, detail, f"{at:.1f}s")
        return table

    @contextmanager
    def shown(self) -> Iterator[None]:
        from rich.live import Live  # loaded here keeps start-up fast

        with Live(self._table(), console=self.console, refresh_per_second=8,
                  transient=False) as live:
            self.live = live
            try:
                yield
            finally:
                self.live = None


@contextmanager
def progress_view(stream: IO[str] | None = None) -> Iterator[PlainProgress | LiveProgress]:
    stream = stream or sys.stderr
    if stream.isatty():
        view = LiveProgress(stream)
        with view.shown():
            yield view
    else:
        yield PlainProgress(stream)
