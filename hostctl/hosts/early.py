"""Connections opened while the command finishes starting up.

Between a deploy's specs being validated and its first question to a host, the controller
still imports the deploy machinery and renders what each host should run (CPU here), and
each host's sshd has the SSH handshake to answer (CPU there, and the network): neither needs
the other. `connecting(hosts, factory)` starts the handshakes in the background once the
command has checked everything it checks before contacting a host, and `take(host)` (what
hosts.session.runner_for asks first) hands the command the connection already open.

Nothing else changes: the same runner, known_hosts check and connect timeout (a host that
cannot be reached fails once, within it). A connection the command does not take is closed
when the command ends, or as soon as it opens if that is later; the threads are daemons, so
a host slow to answer never holds up the command's exit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

from hostctl.runner.base import Runner
from hostctl.spec import model as m


@dataclass
class _Opening:
    host: m.Host  # as the inventory said when the connection was started
    done: threading.Event = field(default_factory=threading.Event)
    runner: Runner | None = None
    error: Exception | None = None
    unwanted: bool = False  # the command ended without it: close it once open


_lock = threading.Lock()
_pending: dict[str, _Opening] = {}


def take(host: m.Host) -> Runner | None:
    """The connection opened early to `host` (waiting for it while under way), or None when
    there is none for it as the inventory describes it now. Raises what the early attempt
    raised (a second attempt would wait a second connect timeout)."""
    with _lock:
        opening = _pending.pop(host.name, None)
    if opening is None:
        return None
    opening.done.wait()
    if opening.host != host:
        _close(opening)
        return None
    if opening.error is not None:
        raise opening.error
    return opening.runner


@contextmanager
def connecting(hosts: Iterable[m.Host], factory: Callable[[m.Host], Runner]) -> Iterator[None]:
    """Open connections to `hosts` in the background (`factory` builds each runner) for
    `take` to hand out during the block; close the ones not taken at its end."""
    started = []
    with _lock:
        for host in hosts:
            if host.name in _pending:
                continue
            opening = _pending[host.name] = _Opening(host)
            started.append(opening)
    for opening in started:
        threading.Thread(target=_open, args=(opening, factory), daemon=True,
                         name=f"early-connect-{opening.host.name}").start()
    try:
        yield
    finally:
        with _lock:
            for opening in started:
                if _pending.get(opening.host.name) is opening:
                    del _pending[opening.host.name]
                    opening.unwanted = True
        for opening in started:
            if opening.unwanted and opening.done.is_set():
                _close(opening)


def _open(opening: _Opening, factory: Callable[[m.Host], Runner]) -> None:
    runner = None
    try:
        runner = factory(opening.host)
        runner.connect()
        opening.runner = runner
    except Exception as exc:  # handed to whoever takes it: a bug propagates there
        if runner is not None:
            with suppress(Exception):
                runner.close()
        opening.error = exc
    finally:
        with _lock:
            opening.done.set()
            late = opening.unwanted
        if late:
            _close(opening)


def _close(opening: _Opening) -> None:
    if opening.runner is not None:
        with suppress(Exception):
            opening.runner.close()
