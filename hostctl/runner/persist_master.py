"""The connection keeper behind the inventory's `ssh.persist`: OpenSSH's ControlPersist, for
hostctl's own Paramiko connections.

Paramiko cannot hand a connection from one process to the next, so consecutive hostctl
commands each paid Python importing Paramiko, the SSH handshake and sshd's session set-up on
every host (~0.2 s of a no-op deploy's 0.6 s). With `persist`, the first command starts this
process; it opens the connections (the same `SSHRunner`: same key, same known_hosts check,
same connect timeout) and keeps each one open until it has been idle for `persist` seconds,
then closes it, and exits once it holds none. Commands reach it on a Unix socket in a 0700
folder of the user who started it (`persist_client.keeper_dir`), and it also checks that
each caller is that user (SO_PEERCRED): whoever could use the socket could already read the
key. It writes nothing but start, exit and its own faults (never a command, its input or its
output) to `keeper.log` beside the socket.

Run: python -m hostctl.runner.persist_master DIR READY_FD (by persist_client, never by hand).
"""

from __future__ import annotations

import json
import os
import select
import socket
import struct
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hostctl.runner import persist_wire as wire
from hostctl.runner.base import Command, Result, RunnerError

_ACCEPT_POLL = 0.5
_WATCH_POLL = 0.1
# How long a keeper that was never asked anything stays (the command that started it may
# have died before its first request).
_FIRST_REQUEST = 30.0
_LOG_LIMIT = 256 * 1024
# The SSHRunner arguments a request must carry, with their types.
_PARAMS: dict[str, tuple[type, ...]] = {
    "host": (str,), "address": (str,), "port": (int,), "user": (str,), "key_path": (str,),
    "connect_timeout": (int, float), "known_hosts": (str, type(None)), "strict": (bool,),
}


def log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} [{os.getpid()}] {message}", flush=True)


@dataclass
class _Kept:
    runner: Any  # SSHRunner, imported in main() (Paramiko is most of this process's start)
    persist: float
    last_used: float = field(default_factory=time.monotonic)
    busy: int = 0


class BadRequest(Exception):
    """A request this keeper does not understand: answered, never acted on."""


class _Refused(Exception):
    """The keeper is stopping: the request is refused before anything is done."""


class Keeper:
    """The connections kept, by what they were opened with, and the requests under way."""

    def __init__(self, runner_class: Any) -> None:
        self.runner_class = runner_class
        self.kept: dict[str, _Kept] = {}
        self.lock = threading.Lock()
        self.clients = 0
        self.linger = _FIRST_REQUEST
        self.last_activity = time.monotonic()
        self.stopping = False

    # -- requests -----------------------------------------------------------------------

    def serve_client(self, conn: socket.socket) -> None:
        """Answer one command's requests until it closes the socket (the accepting loop
        has counted it among the clients)."""
        try:
            if _peer_uid(conn) != os.getuid():
                return
            while True:
                try:
                    header, payload = wire.receive(conn)
                except (wire.WireError, OSError):
                    return
                if header.get("op") in ("connect", "run"):
                    reply, data = self.serve_request(conn, header, payload)
                else:
                    reply, data = self.answer_admin(header)
                wire.send(conn, reply, data)
        except OSError:
            return  # the command went away mid-answer
        finally:
            conn.close()
            with self.lock:
                self.clients -= 1
                self.last_activity = time.monotonic()

    def answer_admin(self, header: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        op = header.get("op")
        if op == "stats":
            return {"pid": os.getpid(), "connections": self.stats()}, b""
        if op == "stop":
            with self.lock:
                self.stopping = True
            return {"ok": True}, b""
        return {"error": "BadRequest", "reason": f"unknown op {op!r}"}, b""

    def serve_request(self, conn: socket.socket, header: dict[str, Any], payload: bytes
                      ) -> tuple[dict[str, Any], bytes]:
        """A command to connect or run: first TAKEN (it will be done; its answer follows)
        or REFUSED (this keeper is stopping, nothing was done: the command connects
        directly), then the answer."""
        try:
            kept = self.take(header)
        except _Refused:
            conn.sendall(wire.REFUSED)
            raise OSError("refused") from None  # ends this client: it goes direct
        except BadRequest as exc:
            conn.sendall(wire.TAKEN)
            return {"error": "BadRequest", "reason": str(exc)}, b""
        try:
            conn.sendall(wire.TAKEN)
        except OSError:  # the command went away: nothing is done for it
            self.release(kept)
            raise
        runner = kept.runner
        trips, connects = runner.round_trips, runner.connects
        try:
            if header["op"] == "connect":
                runner.connect()
                return {"ok": True, "connects": runner.connects - connects}, b""
            result = self.run_watched(conn, runner, _command(header), payload,
                                      _timeout(header))
            out, err = result.stdout.encode(), result.stderr.encode()
            return {"rc": result.rc, "out": len(out), "round_trips": runner.round_trips - trips,
                    "connects": runner.connects - connects}, out + err
        except RunnerError as exc:
            return {"error": type(exc).__name__, "reason": exc.reason, "target": exc.target,
                    "round_trips": runner.round_trips - trips}, b""
        except BadRequest as exc:
            return {"error": "BadRequest", "reason": str(exc)}, b""
        except Exception as exc:  # a fault of the keeper's: logged without its message,
            # which may quote the command (only the type and where it was raised)
            log(f"fault: {type(exc).__name__}\n"
                + "".join(traceback.format_tb(exc.__traceback__)))
            return {"error": "internal", "reason": type(exc).__name__}, b""
        finally:
            self.release(kept)

    def release(self, kept: _Kept) -> None:
        with self.lock:
            kept.busy -= 1
            kept.last_used = time.monotonic()

    def take(self, header: dict[str, Any]) -> _Kept:
        """The kept connection for the request's SSH settings (a new runner if none), marked
        busy. The key file's identity is part of what a connection is kept by: a key
        replaced on disk gets a connection of its own."""
        params = header.get("ssh")
        if not isinstance(params, dict) or set(params) != set(_PARAMS) or not all(
                _typed(params[k], t) for k, t in _PARAMS.items()):
            raise BadRequest("ssh settings missing or of the wrong type")
        persist = header.get("persist")
        if not isinstance(persist, int | float) or isinstance(persist, bool) \
                or not 0 < persist <= 86400:
            raise BadRequest("persist must be seconds, more than 0")
        try:
            st = os.stat(params["key_path"])
            key_id = [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]
        except OSError:
            key_id = None  # the runner reports the missing key in its own words
        name = json.dumps([params, key_id], sort_keys=True)
        with self.lock:
            if self.stopping:  # decided under this lock: exit() never loses a busy one
                raise _Refused
            kept = self.kept.get(name)
            if kept is None:
                runner = self.runner_class(**params, reconnect_stale=True)
                kept = self.kept[name] = _Kept(runner, float(persist))
            kept.persist = float(persist)
            kept.busy += 1
            self.linger = max(1.0, float(persist))
            return kept

    def run_watched(self, conn: socket.socket, runner: Any, command: Command, stdin: bytes,
                    timeout: float | None) -> Result:
        """`runner.run(...)`, stopped on the host (as a timeout stops it) if the command
        that asked for it goes away first: its socket reaches EOF."""
        cancel = threading.Event()
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["result"] = runner.run(command, stdin=stdin, timeout=timeout,
                                           cancel=cancel)
            except BaseException as exc:  # re-raised in the serving thread
                box["error"] = exc

        worker = threading.Thread(target=work, daemon=True, name=f"run-{runner.host}")
        worker.start()
        while True:
            worker.join(_WATCH_POLL)
            if not worker.is_alive():
                break
            if not cancel.is_set() and _gone(conn):
                cancel.set()
        if "error" in box:
            raise box["error"]
        result: Result = box["result"]
        return result

    # -- housekeeping -------------------------------------------------------------------

    def stats(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        with self.lock:
            return [{"host": k.runner.host, "target": k.runner.target,
                     "connected": k.runner.connected, "connects": k.runner.connects,
                     "idle": round(now - k.last_used, 3), "persist": k.persist,
                     "busy": k.busy} for k in self.kept.values()]

    def expire(self) -> bool:
        """Close connections idle past their `persist`; True when the keeper should exit:
        asked to stop and no command under way, or nothing kept, nobody connected and idle
        for its linger."""
        now = time.monotonic()
        with self.lock:
            done = [n for n, k in self.kept.items() if not k.busy and (
                self.stopping or now - k.last_used >= k.persist or not k.runner.connected)]
            closing = [self.kept.pop(n) for n in done]
            finished = not self.kept and (self.stopping or (
                not self.clients and now - self.last_activity >= self.linger))
            # From here every request is refused: a command that reaches the socket as it
            # goes connects directly instead.
            self.stopping = self.stopping or finished
        for k in closing:
            k.runner.close()
        return finished


def _typed(value: object, types: tuple[type, ...]) -> bool:
    # bool is an int to isinstance; a port of `true` is not a port
    return isinstance(value, types) and (not isinstance(value, bool) or bool in types)


def _command(header: dict[str, Any]) -> Command:
    command = header.get("command")
    if isinstance(command, str):
        return command
    if isinstance(command, list) and command and all(isinstance(w, str) for w in command):
        return command
    raise BadRequest("command must be a script or a list of words")


def _timeout(header: dict[str, Any]) -> float | None:
    timeout = header.get("timeout")
    if timeout is None:
        return None
    if isinstance(timeout, int | float) and not isinstance(timeout, bool) and timeout >= 0:
        return float(timeout)
    raise BadRequest("timeout must be seconds or null")


def _peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


def _gone(conn: socket.socket) -> bool:
    """The asking command closed its end (or, against the protocol, wrote while waiting)."""
    try:
        readable, _, _ = select.select([conn], [], [], 0)
        return bool(readable)
    except (OSError, ValueError):
        return True


def serve(directory: Path, ready_fd: int) -> None:
    """Listen on the socket in `directory`, tell the starting command on `ready_fd`, answer
    until `Keeper.expire` says to exit."""
    # imported here, not at the top: the fork in main() happens before Paramiko loads
    # (start-up of the process the starting command waits for)
    from hostctl.runner.ssh import SSHRunner

    keeper = Keeper(SSHRunner)
    path = wire.socket_path(directory)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # the socket file is 0600 from its first moment
    try:
        listener.bind(str(path))
    finally:
        os.umask(old)
    listener.listen(64)
    listener.settimeout(_ACCEPT_POLL)
    ours = os.stat(path).st_ino
    os.write(ready_fd, b"1")
    os.close(ready_fd)
    log(f"keeping connections on {path}")
    try:
        while not keeper.expire():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(None)
            with keeper.lock:  # counted before expire() can look again
                keeper.clients += 1
            threading.Thread(target=keeper.serve_client, args=(conn,), daemon=True).start()
    finally:
        # The name first, so no command finds this keeper any more; only our own socket:
        # a keeper started after this one (ours looked dead to it) may have put its own
        # there. A command that connected just before is never answered TAKEN, so it
        # connects directly.
        try:
            if os.stat(path).st_ino == ours:
                path.unlink()
        except OSError:
            pass
        listener.close()
        log("exiting: no connection left to keep")


def main(argv: list[str]) -> int:
    directory, ready_fd = Path(argv[0]), int(argv[1])
    # Detach: the starting command waits for this first process to exit (no zombie, no
    # lingering child of its own); the grandchild keeps the connections.
    if os.fork():
        os._exit(0)
    os.setsid()
    logfile = directory / "keeper.log"
    fd = os.open(logfile, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    if os.fstat(fd).st_size > _LOG_LIMIT:  # its own faults only, but never unbounded
        os.ftruncate(fd, 0)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    serve(directory, ready_fd)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
