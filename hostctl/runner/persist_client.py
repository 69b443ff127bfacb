"""A runner whose SSH connection outlives the command: the inventory's `ssh.persist`.

`PersistentRunner` asks the connection keeper (`persist_master`, started on first use and
gone once idle) to run each command on the connection it keeps for the host, so the next
hostctl command within `persist` seconds skips importing Paramiko, the SSH handshake and
sshd's session set-up. What a command sees is what `SSHRunner` gives it: the same results,
the same errors in the same words (they are raised in the keeper by an `SSHRunner` and
re-raised here), the same host-key checks (done by that runner when the keeper connects).

Where the keeper cannot be had (no private folder for its socket, or it did not start within
START_WAIT), the runner connects directly instead, as without `persist`. Image pushes
(`stream_in`) and port forwards open a direct connection of their own: both move bulk data
that gains nothing from a kept connection.
"""

from __future__ import annotations

import fcntl
import os
import select
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hostctl
from hostctl.runner import base
from hostctl.runner import persist_wire as wire
from hostctl.runner.base import (
    ClosesOnExit,
    Command,
    ConnectionLost,
    Result,
    RunnerError,
    decode,
    describe,
    shell_line,
)

if TYPE_CHECKING:
    from hostctl.runner.ssh import SSHRunner

START_WAIT = 10.0
"""Seconds a command waits for a keeper it started to listen before connecting directly."""
STOP_WAIT = 10.0
"""Seconds `hostctl disconnect` waits for the keeper to exit."""
_LOCK_WAIT = 15.0
_SOCKET_MAX = 107  # sun_path's size on Linux, less its NUL
# The errors an SSHRunner raises, re-raised here by name (the keeper sends the name).
_ERRORS: dict[str, type[RunnerError]] = {c.__name__: c for c in (
    base.HostUnreachable, base.AuthenticationFailed, base.HostKeyRejected, ConnectionLost,
    base.CommandTimeout)}
# The keeper's answer may lag the command's own timeout by its connect and clean-up.
_ANSWER_MARGIN = 30.0
# How long a keeper may take to say it takes a request without a timeout of its own (it
# says so before acting on it, at once unless the machine is starved).
_TAKE_WAIT = 300.0
# Keeper folders where this process could not start one: its other hosts connect directly
# at once instead of each waiting for a keeper in turn.
_no_keeper: set[Path] = set()


def keeper_dir() -> Path | None:
    """The keeper's private folder: `$HOSTCTL_PERSIST_DIR`, else `$XDG_RUNTIME_DIR/hostctl`,
    else `~/.cache/hostctl`; created 0700. None (connect directly) when it is not a folder
    of this user's that only they can enter, or too deep for a socket's path."""
    if env := os.environ.get("HOSTCTL_PERSIST_DIR"):
        d = Path(env)
    elif runtime := os.environ.get("XDG_RUNTIME_DIR"):
        d = Path(runtime) / "hostctl"
    else:
        d = Path(os.path.expanduser("~/.cache")) / "hostctl"
    try:
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(d)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        return None
    if len(os.fsencode(wire.socket_path(d))) > _SOCKET_MAX:
        return None
    return d


def dial(directory: Path, *, start: bool) -> socket.socket | None:
    """A socket to the keeper in `directory` (started if `start` and none answers), or None
    when there is none to be had."""
    path = wire.socket_path(directory)
    sock = _try_connect(path)
    if sock is not None or not start or directory in _no_keeper:
        return sock
    # One command starts it; the others wait on the lock and then find it listening.
    with open(directory / "keeper.lock", "a") as lock:
        end = time.monotonic() + _LOCK_WAIT
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= end:
                    _no_keeper.add(directory)
                    return None
                time.sleep(0.02)
        sock = _try_connect(path)
        if sock is None and _start_keeper(directory, path):
            sock = _try_connect(path)
        if sock is None:
            _no_keeper.add(directory)
        return sock


def _try_connect(path: Path) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
        return sock
    except OSError:
        sock.close()
        return None


def _start_keeper(directory: Path, path: Path) -> bool:
    """Start a keeper listening at `path`; True once it says it listens."""
    with suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            path.unlink()  # a keeper that died without removing it: nobody listens
        else:
            return False  # not ours to remove
    read_end, write_end = os.pipe()
    env = dict(os.environ)
    # The keeper runs this same hostctl, wherever it was imported from.
    here = str(Path(hostctl.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH")) if p)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hostctl.runner.persist_master", str(directory),
             str(write_end)], pass_fds=(write_end,), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/", env=env,
            start_new_session=True)
    except OSError:
        os.close(read_end)
        return False
    finally:
        os.close(write_end)
    try:
        with suppress(subprocess.TimeoutExpired):
            proc.wait(START_WAIT)  # it forks and exits at once (persist_master.main)
        ready, _, _ = select.select([read_end], [], [], START_WAIT)
        return bool(ready) and os.read(read_end, 1) == b"1"
    finally:
        os.close(read_end)


def keeper_call(directory: Path, header: dict[str, Any]) -> dict[str, Any] | None:
    """One request to a running keeper (none is started): `stats` or `stop`."""
    sock = dial(directory, start=False)
    if sock is None:
        return None
    with sock:
        sock.settimeout(10)
        wire.send(sock, header)
        reply, _ = wire.receive(sock)
        return reply


def stop_keeper(wait: float = STOP_WAIT) -> str:
    """Ask the keeper to close its connections and exit, and wait (at most `wait` seconds)
    for it to go: what was done, in a line. Commands under way finish first."""
    directory = keeper_dir()
    if directory is None:
        return "no kept connections"
    try:
        reply = keeper_call(directory, {"op": "stats"})
        if reply is None:
            return "no kept connections"
        connections = [c for c in reply.get("connections", []) if c.get("connected")]
        keeper_call(directory, {"op": "stop"})
    except (OSError, wire.WireError) as exc:
        return f"the connection keeper did not answer ({exc})"
    n = len(connections)
    kept = f"{n} kept connection{'s' if n != 1 else ''}" + (
        ": " + ", ".join(sorted(str(c.get("host")) for c in connections)) if n else "")
    end = time.monotonic() + wait
    while wire.socket_path(directory).exists():  # it removes its socket as it exits
        if time.monotonic() >= end:
            return f"closing {kept} once the commands under way on them end"
        time.sleep(0.05)
    return f"closed {kept}"


class PersistentRunner(ClosesOnExit):
    """The `Runner` of a host whose inventory sets `ssh.persist`: commands run on the
    keeper's connection (see the module's text)."""

    def __init__(self, settings: dict[str, Any], persist: float) -> None:
        self.settings = settings  # SSHRunner's arguments, paths absolute
        self.persist = persist
        self.host: str = settings["host"]
        self.target = f"{settings['address']}:{settings['port']}"
        self._trips = 0  # round trips made by the keeper for this runner
        self.connects = 0
        self._sock: socket.socket | None = None
        self._asked: socket.socket | None = None  # the socket a connect was answered on
        self._direct: SSHRunner | None = None
        self._bulk: SSHRunner | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PersistentRunner({self.host!r}, {self.settings['user']}@{self.target})"

    @property
    def round_trips(self) -> int:
        return self._trips + sum(r.round_trips for r in (self._direct, self._bulk) if r)

    @round_trips.setter
    def round_trips(self, value: int) -> None:  # the Runner protocol's attribute is settable
        self._trips = value - sum(r.round_trips for r in (self._direct, self._bulk) if r)

    def connect(self) -> None:
        with self._lock:
            # Asked once per socket to the keeper: a command connects its hosts early
            # (hosts.early) and again where it opens its runners (runner.pool).
            if self._direct is None and (self._sock is None or self._sock is not self._asked):
                self._ask({"op": "connect"}, b"", self.settings["connect_timeout"]
                          + _ANSWER_MARGIN, "connecting")
                self._asked = self._sock
            direct = self._direct
        if direct is not None:
            direct.connect()

    def run(self, command: Command, *, stdin: bytes | None = None,
            timeout: float | None = None) -> Result:
        shell_line(command)  # a malformed command fails here, as SSHRunner's does
        with self._lock:
            if self._direct is None:
                header = {"op": "run", "command": command if isinstance(command, str)
                          else list(command), "timeout": timeout}
                wait = None if timeout is None else \
                    timeout + self.settings["connect_timeout"] + _ANSWER_MARGIN
                reply, data = self._ask(header, stdin or b"", wait, describe(command))
                rc, out = reply.get("rc"), reply.get("out")
                if self._direct is None:
                    if not isinstance(rc, int) or not isinstance(out, int):
                        raise self._keeper_fault("an answer without an exit code")
                    return Result(rc, decode(data[:out]), decode(data[out:]))
            direct = self._direct
        return direct.run(command, stdin=stdin, timeout=timeout)

    def stream_in(self, command: Sequence[str], chunks: Iterable[bytes], *,
                  timeout: float | None = None) -> Result:
        return self._bulk_runner().stream_in(command, chunks, timeout=timeout)

    def forward_port(self, remote_port: int, remote_host: str = "127.0.0.1"
                     ) -> AbstractContextManager[int]:
        return self._bulk_runner().forward_port(remote_port, remote_host)

    def close(self) -> None:
        with self._lock:
            sock, self._sock = self._sock, None
            runners = [r for r in (self._direct, self._bulk) if r is not None]
            self._trips += sum(r.round_trips for r in runners)
            self._direct = self._bulk = None
        if sock is not None:
            sock.close()
        for r in runners:
            r.close()

    # -- the keeper ---------------------------------------------------------------------

    def _ask(self, header: dict[str, Any], payload: bytes, wait: float | None,
             what: str) -> tuple[dict[str, Any], bytes]:
        """Send one request and read its answer (the lock held). Without a keeper, switch
        to a direct runner (`_direct`) and return an empty answer for the caller to redo
        the request on it."""
        if self._sock is None:
            directory = keeper_dir()
            self._sock = None if directory is None else dial(directory, start=True)
            if self._sock is None:
                self._direct = self._ssh_runner()
                return {}, b""
        sock = self._sock
        try:
            # As long as the answer may take: a keeper too busy to say TAKEN in time may
            # still take it, and the command must not then run a second time directly.
            sock.settimeout(wait if wait is not None else _TAKE_WAIT)
            wire.send(sock, {**header, "ssh": self.settings, "persist": self.persist},
                      payload)
            taken = sock.recv(1)
        except TimeoutError as exc:
            raise self._lost(sock, what) from exc
        except OSError:
            taken = b""
        if taken != wire.TAKEN:  # refused, or the keeper went first: nothing was done
            self._sock = None
            sock.close()
            self._direct = self._ssh_runner()
            return {}, b""
        try:
            sock.settimeout(wait)
            reply, data = wire.receive(sock)
        except (OSError, wire.WireError) as exc:
            raise self._lost(sock, what) from exc
        for key in ("round_trips", "connects"):
            if not isinstance(reply.get(key, 0), int):
                raise self._keeper_fault(f"a {key} that is not a number")
        self._trips += reply.get("round_trips", 0)
        self.connects += reply.get("connects", 0)
        if "error" in reply:
            cls = _ERRORS.get(str(reply["error"]))
            if cls is None:
                raise self._keeper_fault(str(reply.get("reason")))
            target = reply.get("target")
            raise cls(self.host, str(reply.get("reason")),
                      target=target if isinstance(target, str) else self.target)
        return reply, data

    def _lost(self, sock: socket.socket, what: str) -> ConnectionLost:
        self._sock = None
        sock.close()
        return ConnectionLost(
            self.host, f"the connection keeper went away while {what} was under way — "
            "its outcome is unknown; re-run to converge (its log: keeper.log beside its "
            "socket)", target=self.target)

    def _keeper_fault(self, what: str) -> RunnerError:
        return RunnerError(self.host, f"the connection keeper failed ({what}; its log: "
                           "keeper.log beside its socket) — set ssh.persist: 0 to connect "
                           "directly", target=self.target)

    def _ssh_runner(self) -> SSHRunner:
        # imported here: with a keeper, this command never loads Paramiko (start-up)
        from hostctl.runner.ssh import SSHRunner

        return SSHRunner(**self.settings)

    def _bulk_runner(self) -> SSHRunner:
        with self._lock:
            if self._direct is not None:
                return self._direct
            if self._bulk is None:
                self._bulk = self._ssh_runner()
            return self._bulk
