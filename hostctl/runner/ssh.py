"""SSH backend: a Paramiko client opens and holds the connection; commands run on raw
Paramiko channels.

Why not Fabric's `Connection`: it only wrapped the `SSHClient.connect` call below (with
every ssh_config and auth strategy turned off), and importing Fabric brings invoke (with
unittest.mock and asyncio), a large share of the start-up of every command that connects.
Why not `Connection.run`: invoke's stdin pump decodes every chunk to text (binary input such
as a `docker save` tarball would be corrupted) and copies 1000 bytes per 10 ms, far too slow
for images. Why not `Connection.forward_local`: it cannot listen on an OS-chosen port, and a
refused remote port kills its accept loop. Both are done here on the client's Paramiko
transport instead, reusing Fabric's `Tunnel` for the byte pumping (imported when a port is
forwarded).

Host keys (see `SSHRunner`): trust on first use into a hostctl-owned known_hosts file, refuse
a changed key; `strict=True` refuses unknown keys too; `known_hosts=None` checks nothing.
"""

from __future__ import annotations

import base64
import enum
import errno
import fcntl
import hashlib
import logging
import os
import shlex
import socket
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from hostctl.runner import paramiko_import  # noqa: F401  (before paramiko: see there)

# isort: split
import paramiko
from paramiko.client import MissingHostKeyPolicy, SSHClient
from paramiko.common import cMSG_IGNORE
from paramiko.hostkeys import HostKeys
from paramiko.message import Message
from paramiko.pkey import PKey

from hostctl.runner.base import (
    DRAIN_GRACE,
    AuthenticationFailed,
    ClosesOnExit,
    Command,
    ConnectionLost,
    Deadline,
    HostKeyRejected,
    HostUnreachable,
    Result,
    RunnerError,
    decode,
    default_known_hosts,
    describe,
    shell_line,
    timed_out,
)

# Paramiko logs connection failures with tracebacks from its transport thread; Python's
# last-resort handler would print them to the operator's terminal. The runner turns those
# failures into one clear RunnerError instead, so its log stays silent unless configured.
logging.getLogger("paramiko").addHandler(logging.NullHandler())
logging.getLogger("paramiko").propagate = False

DEFAULT_KEEPALIVE = 15.0
"""Seconds of silence before a keepalive packet. A peer that stops acknowledging is declared
lost 3 intervals after that (so within ~4 intervals of the cut)."""

_RUN_ID_VAR = "HOSTCTL_RUN_ID"
# A grep over every process's environment; the pids of matches get SIGTERM. Until it finds
# one (at most 20 times, 0.1 s apart): a command sent a moment ago may not have been started
# by sshd yet, and closing its channel afterwards would hand it EOF, not stop it.
_STOP_SCRIPT = (
    "i=0; while :; do found=; "
    "for f in $(grep -lzxF {tag} /proc/[0-9]*/environ 2>/dev/null); do "
    'p=${{f#/proc/}}; kill -TERM "${{p%/environ}}" 2>/dev/null && found=1; done; '
    '{{ [ -n "$found" ] || [ $i -ge 20 ]; }} && break; i=$((i + 1)); sleep 0.1; done; true'
)
_STOP_TIMEOUT = 5.0
_READ_SIZE = 64 * 1024
_SEND_SIZE = 32 * 1024
# The channel's timeout only paces the stdin loop so it can check the deadline; readers
# simply retry when it fires.
_POLL = 0.25
STALE_PROBE = 2.0
"""Seconds a kept connection (`reconnect_stale`) gets to open a channel before it is
replaced by a new one."""


class _Default(enum.Enum):
    KNOWN_HOSTS = "default"


def fingerprint(key: PKey) -> str:
    """OpenSSH-style `SHA256:...` fingerprint, as `ssh-keygen -l` prints it."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class SSHRunner(ClosesOnExit):
    """Runs commands on one host over SSH, key authentication only.

    The connection is opened on first use (or by `connect`) and reused for every call; if it
    was lost, the next call opens a new one. Host-key policy:

    - default: trust on first use. An unknown host's key is appended to `known_hosts`; a key
      that differs from the recorded one is refused (`HostKeyRejected`) with the command that
      forgets the old one. Sandbox hosts rebuilt with new keys should use their own file.
    - `strict=True`: unknown keys are refused too (add them with `ssh-keyscan` first).
    - `known_hosts=None`: no checking at all; only for throwaway test hosts.

    `~/.ssh/known_hosts`, `~/.ssh/config` and the SSH agent are deliberately ignored so a run
    depends only on the inventory.
    """

    def __init__(
        self,
        host: str,
        address: str,
        port: int = 22,
        user: str = "root",
        key_path: str | os.PathLike[str] = "~/.ssh/id_ed25519",
        connect_timeout: float = 10,
        command_timeout: float | None = None,
        *,
        known_hosts: str | os.PathLike[str] | _Default | None = _Default.KNOWN_HOSTS,
        strict: bool = False,
        keepalive: float = DEFAULT_KEEPALIVE,
        reconnect_stale: bool = False,
    ) -> None:
        if known_hosts is _Default.KNOWN_HOSTS:
            known_hosts = default_known_hosts()
        if strict and known_hosts is None:
            raise ValueError("strict host key checking needs a known_hosts file")
        self.host = host
        self.address = address
        self.port = port
        self.user = user
        self.key_path = Path(key_path).expanduser()
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.known_hosts = None if known_hosts is None else Path(known_hosts).expanduser()
        self.strict = strict
        self.keepalive = keepalive
        # For a connection kept across runs (runner.persist_master): one that went stale
        # while idle is replaced, the command not yet sent, instead of failing the command.
        self.reconnect_stale = reconnect_stale
        self.round_trips = 0
        self.connects = 0
        self.target = f"{address}:{port}"
        self._conn: _Connection | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SSHRunner({self.host!r}, {self.user}@{self.target})"

    # -- connection ---------------------------------------------------------------------

    def connect(self) -> None:
        """Open the connection now (idempotent); raises `HostUnreachable` and friends."""
        self._transport()

    @property
    def connected(self) -> bool:
        """True while a live connection is open."""
        conn = self._conn
        return conn is not None and bool(conn.is_connected)

    def close(self) -> None:
        """Close the connection, if open. The runner may be used again afterwards."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _transport(self) -> paramiko.Transport:
        with self._lock:
            if self._conn is not None and self._conn.transport is not None \
                    and self._conn.is_connected:
                return self._conn.transport
            if self._conn is not None:  # lost earlier: start afresh
                self._conn.close()
                self._conn = None
            conn = self._open()
            self._conn = conn
            self.connects += 1
            assert conn.transport is not None  # open() succeeded
            return conn.transport

    def _open(self) -> _Connection:
        # No ~/.ssh/config, agent or other key may change who we connect as or with which
        # key: only the inventory's.
        conn = _Connection(SSHClient())
        pkey = self._load_key()
        self._apply_host_key_policy(conn.client)
        try:
            conn.open(
                hostname=self.address,
                port=self.port,
                username=self.user,
                pkey=pkey,
                look_for_keys=False,
                allow_agent=False,
                timeout=self.connect_timeout,
                banner_timeout=self.connect_timeout,
                auth_timeout=self.connect_timeout,
                transport_factory=_PromptTransport,
            )
        except Exception as exc:
            conn.close()
            raise self._connect_error(exc) from exc
        assert conn.transport is not None  # connect() succeeded
        self._tune(conn.transport)
        return conn

    def _load_key(self) -> PKey:
        """Read the private key up front, so a bad key file is reported as such."""
        try:
            return PKey.from_path(self.key_path)
        except FileNotFoundError:
            reason = f"SSH key {self.key_path} not found — check the key path in the inventory"
        except (paramiko.SSHException, ValueError, TypeError, OSError) as exc:
            # cryptography says "password-protected" with a TypeError, paramiko with
            # PasswordRequiredException: match the words, not the types.
            if "password" in str(exc).lower() or "passphrase" in str(exc).lower():
                reason = (
                    f"SSH key {self.key_path} is passphrase-protected — hostctl needs an "
                    "unencrypted deploy key"
                )
            elif isinstance(exc, OSError) and exc.strerror:
                reason = f"SSH key {self.key_path} cannot be read ({exc.strerror.lower()})"
            else:  # the parsers' own messages are long and unhelpful here
                reason = (
                    f"SSH key {self.key_path} is not a private key file — point the inventory "
                    "at the private half (not the .pub)"
                )
        raise AuthenticationFailed(self.host, reason, target=self.target)

    def _apply_host_key_policy(self, client: SSHClient) -> None:
        if self.known_hosts is None:
            client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
            return
        if self.known_hosts.is_file():
            # Into the client's own table (checked by paramiko: a mismatch raises
            # BadHostKeyException) but not via load_host_keys, whose save-back rewrites the
            # whole file and would race with other hosts connecting in parallel.
            client.get_host_keys().load(str(self.known_hosts))
        client.set_missing_host_key_policy(_RecordOrRefuse(self))

    def _tune(self, transport: paramiko.Transport) -> None:
        # Paramiko's keepalive only sends; TCP_USER_TIMEOUT turns "sent but never
        # acknowledged" into a socket error, so a cut cable surfaces as ConnectionLost
        # within ~4 keepalive intervals instead of the kernel's ~15 minutes.
        if self.keepalive <= 0:
            return
        transport.set_keepalive(max(1, round(self.keepalive)))
        sock = transport.sock
        if not isinstance(sock, socket.socket):
            return
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if hasattr(socket, "TCP_USER_TIMEOUT"):
            sock.setsockopt(
                socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(self.keepalive * 3 * 1000)
            )

    def _connect_error(self, exc: Exception) -> RunnerError:
        """Translate what connecting raised into one line naming the cause and a fix."""
        if isinstance(exc, RunnerError):  # from our host-key policy
            return exc
        explained = self._explain(exc)
        if explained is None:
            raise exc  # not a connection problem: a bug, let it surface
        cls, reason = explained
        return cls(self.host, reason, target=self.target)

    def _explain(self, exc: Exception) -> tuple[type[RunnerError], str] | None:
        t = f"{self.connect_timeout:g}s"
        refused = "connection refused — is sshd running and the port right?"
        if isinstance(exc, paramiko.BadHostKeyException):
            return HostKeyRejected, (
                f"host key changed (now {fingerprint(exc.key)}) — if the host was rebuilt, "
                f"forget the old key: ssh-keygen -R '{self._known_hosts_name()}' "
                f"-f {self.known_hosts}"
            )
        if isinstance(exc, paramiko.AuthenticationException):
            return AuthenticationFailed, (
                f"server refused key {self.key_path} for user '{self.user}' — is its public "
                f"key in ~{self.user}/.ssh/authorized_keys on the host?"
            )
        if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
            causes = {getattr(e, "errno", None) for e in exc.errors.values()}
            if causes == {errno.ECONNREFUSED}:
                return HostUnreachable, refused
            return HostUnreachable, f"cannot connect ({exc}) — check the address"
        if isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError since 3.10
            return HostUnreachable, (
                f"no answer within {t} — is the address right and the firewall open?"
            )
        if isinstance(exc, socket.gaierror):
            return HostUnreachable, (
                f"cannot resolve '{self.address}' — check the host's address in the inventory"
            )
        # Paramiko reports a handshake that never finished as a banner error or, when its
        # negotiation wait runs out first, as "No existing session".
        if isinstance(exc, paramiko.SSHException) and (
            "banner" in str(exc) or "No existing session" in str(exc)
        ):
            return HostUnreachable, (
                f"the port answered but did not speak SSH within {t} — is this the sshd port?"
            )
        if isinstance(exc, paramiko.SSHException | EOFError | ConnectionError):
            return HostUnreachable, (
                f"SSH handshake failed ({exc or type(exc).__name__}) — sshd may be overloaded "
                "or refusing us; try again or check its log"
            )
        if isinstance(exc, OSError):
            if exc.errno == errno.ECONNREFUSED:
                return HostUnreachable, refused
            return HostUnreachable, f"{exc.strerror or exc} — check the network path to the host"
        return None

    def _known_hosts_name(self) -> str:
        # The name paramiko and OpenSSH file the key under.
        return self.address if self.port == 22 else f"[{self.address}]:{self.port}"

    # -- commands -----------------------------------------------------------------------

    def run(
        self, command: Command, *, stdin: bytes | None = None, timeout: float | None = None,
        cancel: threading.Event | None = None,
    ) -> Result:
        """Run `command` (argv or sh script) and capture its exit code and output.

        `cancel` (set from another thread) stops the command on the host as a timeout
        does: for whoever runs it on behalf of a caller that has gone away."""
        chunks = None if stdin is None else [stdin]
        return self._exec(command, chunks, timeout, cancel)

    def stream_in(
        self, command: Sequence[str], chunks: Iterable[bytes], *, timeout: float | None = None
    ) -> Result:
        """Run `command` with `chunks` copied into its stdin one at a time."""
        return self._exec(command, chunks, timeout)

    def _exec(
        self, command: Command, chunks: Iterable[bytes] | None, timeout: float | None,
        cancel: threading.Event | None = None,
    ) -> Result:
        # The tag rides in the command's environment (inherited by its children) so an
        # abandoned command can be found and stopped from a second session: sshd neither
        # kills a command whose channel closes nor, for root logins, honours signal requests.
        run_id = uuid.uuid4().hex[:16]
        line = f"{_RUN_ID_VAR}={run_id} {shell_line(command)}"
        deadline = Deadline(self.command_timeout if timeout is None else timeout)
        transport, chan = self._session(command)
        try:
            chan.settimeout(_POLL)
            try:
                chan.exec_command(line)
            except (paramiko.SSHException, OSError, EOFError) as exc:
                raise self._lost(command) from exc
            out, err = _Drain(chan.recv), _Drain(chan.recv_stderr)
            try:
                finished = _feed_and_wait(chan, chunks, deadline, cancel)
            except BaseException:
                # The chunk source failed or we were interrupted: stop the command rather
                # than let it act on a truncated stream or run on unattended.
                self._stop_remote(transport, run_id)
                raise
            if not finished:
                self._stop_remote(transport, run_id)
                raise timed_out(self.host, command, target=self.target)
            grace = deadline.remaining(cap=DRAIN_GRACE)
            out.join(grace)
            err.join(grace)
        finally:
            chan.close()
        rc = chan.recv_exit_status()
        # No exit status and no EOF from sshd: the channel was torn down with the transport
        # (paramiko unlinks channels a moment before it marks the transport inactive).
        if rc == -1 and (not chan.eof_received or not transport.is_active()):
            raise self._lost(command)
        # rc -1 with a clean EOF: killed by a signal (paramiko ignores `exit-signal`).
        return Result(rc, decode(bytes(out.data)), decode(bytes(err.data)))

    def _session(self, command: Command, *, may_replace: bool = True
                 ) -> tuple[paramiko.Transport, paramiko.Channel]:
        """A new session channel, its command not yet sent (one round trip counted).

        With `reconnect_stale`, a connection that was open before this call and cannot open
        a channel within STALE_PROBE seconds is replaced by a new one (nothing was sent on
        it, so nothing can run twice): a kept connection whose host rebooted or whose path
        went away while idle. A new connection has the whole connect timeout."""
        reused = may_replace and self.reconnect_stale and self.connected
        transport = self._transport()
        self.round_trips += 1
        wait = min(STALE_PROBE, self.connect_timeout) if reused else self.connect_timeout
        try:
            return transport, transport.open_session(timeout=wait)
        except paramiko.ChannelException as exc:
            raise HostUnreachable(
                self.host,
                f"sshd refused a new session ({exc}) — raise MaxSessions or retry",
                target=self.target,
            ) from exc
        except (paramiko.SSHException, OSError, EOFError) as exc:
            if not reused:
                raise self._lost(command) from exc
        with self._lock:
            if self._conn is not None and self._conn.transport is transport:
                self._conn.close()
                self._conn = None
        return self._session(command, may_replace=False)

    def _stop_remote(self, transport: paramiko.Transport, run_id: str) -> None:
        """Best effort, bounded: SIGTERM every process carrying this run's tag."""
        script = _STOP_SCRIPT.format(tag=shlex.quote(f"{_RUN_ID_VAR}={run_id}"))
        self.round_trips += 1
        try:
            chan = transport.open_session(timeout=_STOP_TIMEOUT)
        except (paramiko.SSHException, OSError, EOFError):
            return
        try:
            chan.exec_command(shell_line(script))
            chan.shutdown_write()
            chan.status_event.wait(_STOP_TIMEOUT)
        except (paramiko.SSHException, OSError, EOFError):
            pass
        finally:
            chan.close()

    def _lost(self, command: Command) -> ConnectionLost:
        return ConnectionLost(
            self.host,
            f"connection lost while running {describe(command)} — the host rebooted, sshd "
            "was restarted or the network dropped; its outcome is unknown, re-run to converge",
            target=self.target,
        )

    # -- port forwarding ----------------------------------------------------------------

    @contextmanager
    def forward_port(self, remote_port: int, remote_host: str = "127.0.0.1") -> Iterator[int]:
        """Yield a port on 127.0.0.1 tunnelled to `remote_host:remote_port` on the host.

        Like `ssh -L`: each local connection opens one `direct-tcpip` channel; if the host
        cannot reach the target, that local connection is simply closed.
        """
        transport = self._transport()
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(_POLL)
        finished = threading.Event()
        # imported here: only port forwards need it, and Fabric brings invoke (start-up)
        from fabric.tunnels import Tunnel

        tunnels: list[Tunnel] = []

        def accept_loop() -> None:
            while not finished.is_set():
                try:
                    sock, peer = listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                try:
                    chan = transport.open_channel(
                        "direct-tcpip",
                        (remote_host, remote_port),
                        peer,
                        timeout=self.connect_timeout,
                    )
                except (paramiko.SSHException, OSError, EOFError):
                    sock.close()
                    continue
                tunnel = Tunnel(channel=chan, sock=sock, finished=finished)
                tunnel.start()
                tunnels.append(tunnel)

        acceptor = threading.Thread(target=accept_loop, name=f"forward-{self.host}", daemon=True)
        acceptor.start()
        try:
            yield listener.getsockname()[1]
        finally:
            finished.set()
            acceptor.join()
            listener.close()
            for tunnel in tunnels:
                # Fabric's Tunnel polls `finished` once a second.
                tunnel.join(2)


class _PromptTransport(paramiko.Transport):
    """Paramiko's Transport (SSHClient.connect's `transport_factory`), with no small SSH
    message left waiting on a delayed ACK (40 ms on Linux), in either direction.

    Nagle's algorithm holds a small message back until the peer has acknowledged the one
    before, and the peer delays that ACK while it has nothing to send back. The handshake,
    authentication and every command are exchanges of small messages, so:

    - our side sets TCP_NODELAY before the handshake's first byte (authentication alone took
      ~50 ms instead of ~8, and each command's open, exec, EOF and close waited the same way);
    - the host's side cannot be told: OpenSSH's sshd leaves Nagle on until a session's
      command starts. Right after authentication it sends a global request that wants no
      answer (`hostkeys-00@openssh.com`, its host keys) and then the confirmation of our
      first channel, which waited ~40 ms for our ACK of the request. Paramiko answers
      nothing to such a request; this answers an SSH_MSG_IGNORE, which every SSH
      implementation must accept at any time (RFC 4253 section 11.2) and which carries
      the ACK at once: the first channel opened in ~6 ms instead of ~48."""

    def __init__(self, sock: Any, **kwargs: Any) -> None:
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().__init__(sock, **kwargs)

    def _parse_global_request(self, m: Message) -> None:
        m.get_text()
        answered = m.get_boolean()  # paramiko answers (a refusal) when the host asks
        m.rewind()
        super()._parse_global_request(m)
        if not answered:
            # Not Transport.send_ignore: it waits out a key exchange, and this runs in the
            # thread that would finish it.
            ignore = Message()
            ignore.add_byte(cMSG_IGNORE)
            ignore.add_string(b"")
            self._send_message(ignore)


class _Connection:
    """An SSHClient and its transport once open: what the runner used of Fabric's
    `Connection` (its `open` is `SSHClient.connect` with the arguments given)."""

    def __init__(self, client: SSHClient) -> None:
        self.client = client
        self.transport: paramiko.Transport | None = None

    @property
    def is_connected(self) -> bool:
        return bool(self.transport.active) if self.transport is not None else False

    def open(self, **kwargs: Any) -> None:
        self.client.connect(**kwargs)
        self.transport = self.client.get_transport()

    def close(self) -> None:
        # Also after a failed open: a handshake or authentication that failed leaves the
        # client's transport (its thread and socket) behind until closed.
        self.client.close()


class _RecordOrRefuse(MissingHostKeyPolicy):
    """Called by paramiko only for hosts absent from the loaded known_hosts table."""

    def __init__(self, runner: SSHRunner) -> None:
        self.runner = runner

    def missing_host_key(self, client: SSHClient, hostname: str, key: PKey) -> None:
        r = self.runner
        path = r.known_hosts
        assert path is not None
        if r.strict:
            raise HostKeyRejected(
                r.host,
                f"unknown host key {fingerprint(key)} and strict checking is on — verify it, "
                f"then: ssh-keyscan -p {r.port} {r.address} >> {path}",
                target=r.target,
            )
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "r+") as f:
            # flock serialises hosts connecting in parallel (threads or processes); re-read
            # under the lock in case one of them recorded this host meanwhile.
            fcntl.flock(f, fcntl.LOCK_EX)
            known = HostKeys(str(path)).lookup(hostname)
            if known is not None:
                if known.get(key.get_name()) == key:
                    return
                raise HostKeyRejected(
                    r.host,
                    f"host key changed (now {fingerprint(key)}) while connecting — forget the "
                    f"old key: ssh-keygen -R '{hostname}' -f {path}",
                    target=r.target,
                )
            f.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")


class _Drain(threading.Thread):
    """Collects one output stream of a channel until EOF, so the remote never blocks on a
    full window while we are still sending its stdin."""

    def __init__(self, recv: Callable[[int], bytes]) -> None:
        super().__init__(daemon=True)
        self.recv = recv
        self.data = bytearray()
        self.start()

    def run(self) -> None:
        while True:
            try:
                block = self.recv(_READ_SIZE)
            except TimeoutError:
                continue
            except OSError:
                return
            if not block:
                return
            self.data += block


def _feed_and_wait(
    chan: paramiko.Channel, chunks: Iterable[bytes] | None, deadline: Deadline,
    cancel: threading.Event | None = None,
) -> bool:
    """Send `chunks` (if any) as the command's stdin, close it, wait for the exit status.

    False when the deadline passed (or `cancel` was set) first.
    """
    if chunks is not None and not _feed(chan, chunks, deadline, cancel):
        return False
    # EOF on the command's stdin. If the channel is gone, the caller's checks say why.
    with suppress(OSError):
        chan.shutdown_write()
    if cancel is None:
        return bool(chan.status_event.wait(deadline.remaining()))
    while not chan.status_event.wait(deadline.remaining(cap=_POLL)):
        if cancel.is_set() or deadline.expired():
            return False
    return True


def _feed(chan: paramiko.Channel, chunks: Iterable[bytes], deadline: Deadline,
          cancel: threading.Event | None = None) -> bool:
    """Copy `chunks` into the channel a bounded slice at a time; False if time ran out.

    Stops quietly when the command stops reading (it exited or closed stdin): its exit code
    tells the caller what happened.
    """
    for chunk in chunks:
        for start in range(0, len(chunk), _SEND_SIZE):
            piece = chunk[start : start + _SEND_SIZE]
            while piece:
                if deadline.expired() or (cancel is not None and cancel.is_set()):
                    return False
                if chan.exit_status_ready():
                    return True
                try:
                    sent = chan.send(piece)
                except TimeoutError:
                    continue  # window full; re-check the deadline
                except OSError:
                    return True  # channel closed under us; the exit status says why
                if sent == 0:
                    return True
                piece = piece[sent:]
    return True
