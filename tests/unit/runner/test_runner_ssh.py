"""SSHRunner against a real OpenSSH sshd on 127.0.0.1: connecting, failures, host keys, tunnels.

Only 127.0.0.1 is ever contacted; every wait is bounded.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paramiko
import pytest
from paramiko.common import MSG_IGNORE, MSG_REQUEST_FAILURE
from paramiko.message import Message

from hostctl.runner import (
    AuthenticationFailed,
    ConnectionLost,
    HostKeyRejected,
    HostUnreachable,
    RunnerError,
    SSHRunner,
)
from hostctl.runner.ssh import _PromptTransport

if TYPE_CHECKING:
    from tests.rigs.local_sshd import LocalSshd


def make_runner(sshd: LocalSshd, tmp_path: Path, **overrides: object) -> SSHRunner:
    options: dict[str, object] = {
        "connect_timeout": 5,
        "known_hosts": tmp_path / "known_hosts",
    }
    options.update(overrides)
    key = options.pop("key_path", sshd.key_path)
    port = options.pop("port", sshd.port)
    return SSHRunner("app-1", sshd.address, port, sshd.user, key, **options)  # type: ignore[arg-type]


@pytest.fixture
def runner(sshd: LocalSshd, tmp_path: Path) -> Iterator[SSHRunner]:
    with make_runner(sshd, tmp_path) as r:
        yield r


# -- connecting ---------------------------------------------------------------------------


def test_connects_lazily_once_and_reuses_the_connection(runner: SSHRunner) -> None:
    assert runner.connects == 0
    for i in range(5):
        assert runner.run(["echo", str(i)]).stdout == f"{i}\n"
    assert (runner.connects, runner.round_trips) == (1, 5)


@pytest.mark.parametrize("keepalive", [15.0, 0.0])
def test_the_connection_sends_small_messages_at_once(sshd: LocalSshd, tmp_path: Path,
                                                     keepalive: float,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """TCP_NODELAY from the handshake's first message on, keepalive or not: the handshake's,
    authentication's and each command's small SSH messages do not wait for the peer's
    delayed ACK (~40 ms each on Linux)."""
    at_handshake: list[int] = []
    start_client = paramiko.Transport.start_client

    def noting(transport: paramiko.Transport, *args: Any, **kwargs: Any) -> Any:
        at_handshake.append(transport.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        return start_client(transport, *args, **kwargs)

    monkeypatch.setattr(paramiko.Transport, "start_client", noting)
    with make_runner(sshd, tmp_path, keepalive=keepalive) as r:
        r.connect()
        assert at_handshake == [1]
        assert r._conn is not None and r._conn.transport is not None
        sock = r._conn.transport.sock
        assert isinstance(sock, socket.socket)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert r.run(["true"]).ok


def test_a_host_request_wanting_no_answer_is_answered_so_its_ack_goes_at_once(
        sshd: LocalSshd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenSSH's sshd keeps Nagle on until a command starts and, right after authentication,
    sends its host keys in a global request that wants no answer, then the confirmation of
    the first channel: the transport answers an SSH_MSG_IGNORE, so that confirmation does not
    wait for our delayed ACK (~40 ms)."""
    events: list[str] = []
    parse, send = _PromptTransport._parse_global_request, _PromptTransport._send_message

    def parsing(transport: _PromptTransport, m: Message) -> None:
        kind = m.get_text()
        m.rewind()
        events.append(f"request {kind}")
        parse(transport, m)

    def sending(transport: _PromptTransport, m: Message) -> None:
        if threading.current_thread() is transport:  # its reader, not a command's open
            events.append(f"sent {m.asbytes()[0]}")
        send(transport, m)

    monkeypatch.setattr(_PromptTransport, "_parse_global_request", parsing)
    monkeypatch.setattr(_PromptTransport, "_send_message", sending)
    with make_runner(sshd, tmp_path) as r:
        assert r.run(["true"]).ok
    assert "request hostkeys-00@openssh.com" in events
    i = events.index("request hostkeys-00@openssh.com")
    assert events[i + 1] == f"sent {MSG_IGNORE}"


@pytest.mark.parametrize(("want_reply", "sent"), [(False, [MSG_IGNORE]),
                                                  (True, [MSG_REQUEST_FAILURE])])
def test_a_host_request_gets_one_message_back(want_reply: bool, sent: list[int]) -> None:
    """A request that wants an answer already gets paramiko's refusal (which carries the
    ACK): nothing more is sent for it."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        ours = socket.create_connection(server.getsockname(), timeout=5)
        theirs, _ = server.accept()
    transport = _PromptTransport(ours)
    seen: list[int] = []
    transport._send_message = lambda m: seen.append(m.asbytes()[0])  # type: ignore[method-assign]
    request = Message()
    request.add_string("hostkeys-00@openssh.com")
    request.add_boolean(want_reply)
    request.rewind()
    try:
        transport._parse_global_request(request)
    finally:
        ours.close()
        theirs.close()
    assert seen == sent


def test_connect_and_one_round_trip_on_loopback_are_fast(sshd: LocalSshd, tmp_path: Path) -> None:
    with make_runner(sshd, tmp_path) as r:
        started = time.monotonic()
        r.connect()
        connected = time.monotonic()
        r.run(["true"])
        done = time.monotonic()
    print(f"connect {connected - started:.3f}s, first round trip {done - connected:.3f}s")
    assert connected - started < 3
    assert done - connected < 3


def test_refused_port_is_host_unreachable_with_a_fix(sshd: LocalSshd, tmp_path: Path) -> None:
    port = sshd.free_port()
    r = make_runner(sshd, tmp_path, port=port, connect_timeout=2)
    started = time.monotonic()
    with pytest.raises(HostUnreachable) as caught:
        r.run(["true"])
    assert time.monotonic() - started < 2
    assert str(caught.value) == (
        f"app-1 (127.0.0.1:{port}): connection refused — is sshd running and the port right?"
    )
    assert (caught.value.host, r.round_trips) == ("app-1", 0)


def test_silent_port_gives_up_within_the_connect_timeout(sshd: LocalSshd, tmp_path: Path) -> None:
    # Accepts TCP but never speaks SSH, like a wrong port or a wedged sshd.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        r = make_runner(sshd, tmp_path, port=port, connect_timeout=1)
        started = time.monotonic()
        with pytest.raises(HostUnreachable) as caught:
            r.connect()
        elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 3, elapsed
    assert str(caught.value) == (
        f"app-1 (127.0.0.1:{port}): the port answered but did not speak SSH within 1s — "
        "is this the sshd port?"
    )


def test_unresolvable_name_is_host_unreachable(sshd: LocalSshd, tmp_path: Path) -> None:
    # `.invalid` is reserved (RFC 2606): resolution fails locally, nothing is contacted.
    r = SSHRunner("app-1", "no-such-host.invalid", 22, "root", sshd.key_path, connect_timeout=2)
    with pytest.raises(HostUnreachable, match=r"cannot resolve 'no-such-host\.invalid'"):
        r.connect()


# A key the server refuses, or a file that is no private key: (the key, after
# "app-1 (127.0.0.1:PORT): ", the exact message with {key} for the key's path).
KEY_REFUSALS = [
    pytest.param(lambda sshd: sshd.wrong_key_path,
                 "server refused key {key} for user 'root' — is its public key in "
                 "~root/.ssh/authorized_keys on the host?",
                 id="unauthorised-key"),
    pytest.param(lambda sshd: sshd.key_path.with_suffix(".pub"),
                 "SSH key {key} is not a private key file — point the inventory at the private "
                 "half (not the .pub)",
                 id="not-a-private-key"),
]


@pytest.mark.parametrize(("key_of", "message"), KEY_REFUSALS)
def test_a_key_that_cannot_log_in_is_authentication_failed(
    sshd: LocalSshd, tmp_path: Path, key_of: Callable[[LocalSshd], Path], message: str
) -> None:
    key = key_of(sshd)
    r = make_runner(sshd, tmp_path, key_path=key)
    with pytest.raises(AuthenticationFailed) as caught:
        r.connect()
    assert str(caught.value) == f"app-1 (127.0.0.1:{sshd.port}): " + message.format(key=key)


def test_a_refused_login_leaves_no_connection_behind(sshd: LocalSshd, tmp_path: Path) -> None:
    """The transport a failed authentication leaves (its thread and socket) is closed, not
    left to the garbage collector: a deploy retrying a host must not pile them up."""
    import paramiko

    def transports() -> list[threading.Thread]:
        return [t for t in threading.enumerate()
                if isinstance(t, paramiko.Transport) and t.is_alive()]

    def new() -> list[threading.Thread]:
        return [t for t in transports() if t not in before]

    before = transports()  # other tests' transports may still be ending: not this one's
    r = make_runner(sshd, tmp_path, key_path=sshd.wrong_key_path)
    for _ in range(3):
        with pytest.raises(AuthenticationFailed):
            r.connect()
    for _ in range(50):  # a closed transport's thread ends within its poll interval
        if not new():
            break
        time.sleep(0.1)
    assert new() == []


def test_missing_key_file_is_authentication_failed(sshd: LocalSshd, tmp_path: Path) -> None:
    r = make_runner(sshd, tmp_path, key_path=tmp_path / "nope")
    with pytest.raises(AuthenticationFailed, match=r"SSH key .*nope not found"):
        r.connect()


def test_passphrase_protected_key_is_refused_without_prompting(
    sshd: LocalSshd, tmp_path: Path
) -> None:
    key = tmp_path / "locked"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "secret", "-f", str(key)],
        check=True,
        timeout=30,
    )
    r = make_runner(sshd, tmp_path, key_path=key)
    with pytest.raises(AuthenticationFailed, match="passphrase-protected"):
        r.connect()


def test_sub_second_connect_timeout_is_honoured(sshd: LocalSshd, tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:
        r = make_runner(sshd, tmp_path, port=silent.getsockname()[1], connect_timeout=0.3)
        started = time.monotonic()
        with pytest.raises(HostUnreachable, match=r"did not speak SSH within 0\.3s"):
            r.connect()
    assert time.monotonic() - started < 1.5


# -- losing the connection ----------------------------------------------------------------


@pytest.mark.parametrize("feeding", [False, True], ids=["run", "stream_in"])
def test_session_killed_mid_command_is_connection_lost(
    sshd: LocalSshd, runner: SSHRunner, feeding: bool
) -> None:
    runner.connect()
    killed_at: list[float] = []

    def cut() -> None:
        deadline = time.monotonic() + 10
        # Wait until the command is really running on the host, then kill the session.
        while time.monotonic() < deadline:
            if any(p for p in sshd.session_pids() if _is_sleep(p, "27")):
                break
            time.sleep(0.05)
        killed_at.append(time.monotonic())
        sshd.kill_sessions()

    killer = threading.Thread(target=cut)
    killer.start()
    with pytest.raises(ConnectionLost) as caught:
        if feeding:  # `sleep` never reads: we are blocked on a full window when it dies
            endless = (b"x" * 65536 for _ in range(100_000))
            runner.stream_in(["sleep", "27"], endless, timeout=60)
        else:
            runner.run(["sleep", "27"])
    noticed = time.monotonic()
    killer.join(10)
    assert killed_at, "the sleep never started"
    assert noticed - killed_at[0] < 3, noticed - killed_at[0]
    assert str(caught.value).startswith(
        f"app-1 (127.0.0.1:{sshd.port}): connection lost while running `sleep 27`"
    )
    # The next call opens a fresh connection.
    assert runner.run(["echo", "back"]).stdout == "back\n"
    assert runner.connects == 2


def _is_sleep(pid: int, arg: str) -> bool:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes() == f"sleep\0{arg}\0".encode()
    except OSError:
        return False


# -- host keys ----------------------------------------------------------------------------


def _host_key_line(sshd: LocalSshd, name: str | None = None) -> str:
    key_type, blob = sshd.host_key_path.with_suffix(".pub").read_text().split()[:2]
    return f"{name or f'[127.0.0.1]:{sshd.port}'} {key_type} {blob}\n"


def test_first_connection_records_the_host_key(sshd: LocalSshd, tmp_path: Path) -> None:
    known = tmp_path / "state" / "known_hosts"
    with make_runner(sshd, tmp_path, known_hosts=known) as r:
        r.connect()
    assert known.read_text() == _host_key_line(sshd)
    assert known.stat().st_mode & 0o777 == 0o600
    with make_runner(sshd, tmp_path, known_hosts=known, strict=True) as again:
        assert again.run(["true"]).ok
    assert known.read_text() == _host_key_line(sshd)


def test_parallel_first_connections_record_the_key_once(sshd: LocalSshd, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"

    def connect(_: int) -> None:
        with make_runner(sshd, tmp_path, known_hosts=known) as r:
            r.connect()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(connect, range(8)))
    assert known.read_text() == _host_key_line(sshd)


def test_changed_host_key_is_refused_with_the_fix(sshd: LocalSshd, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    impostor = sshd.wrong_key_path.with_suffix(".pub").read_text().split()
    known.write_text(f"[127.0.0.1]:{sshd.port} {impostor[0]} {impostor[1]}\n")
    r = make_runner(sshd, tmp_path, known_hosts=known)
    with pytest.raises(HostKeyRejected) as caught:
        r.connect()
    message = str(caught.value)
    assert message.startswith(f"app-1 (127.0.0.1:{sshd.port}): host key changed (now SHA256:")
    assert message.endswith(f"ssh-keygen -R '[127.0.0.1]:{sshd.port}' -f {known}")


def test_strict_mode_refuses_unknown_hosts(sshd: LocalSshd, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    r = make_runner(sshd, tmp_path, known_hosts=known, strict=True)
    with pytest.raises(HostKeyRejected) as caught:
        r.connect()
    assert "unknown host key SHA256:" in str(caught.value)
    assert str(caught.value).endswith(f"ssh-keyscan -p {sshd.port} 127.0.0.1 >> {known}")
    assert not known.exists()


def test_no_known_hosts_file_accepts_any_key_and_writes_nothing(
    sshd: LocalSshd, tmp_path: Path
) -> None:
    with make_runner(sshd, tmp_path, known_hosts=None) as r:
        assert r.run(["true"]).ok
    assert list(tmp_path.iterdir()) == []


def test_strict_without_a_known_hosts_file_is_a_programming_error(sshd: LocalSshd) -> None:
    with pytest.raises(ValueError, match="strict"):
        SSHRunner(
            "app-1", "127.0.0.1", sshd.port, "root", sshd.key_path, strict=True, known_hosts=None
        )


# -- port forwarding ----------------------------------------------------------------------


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"hello from {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_on_host_loopback() -> Iterator[int]:
    """A tiny HTTP server on the host's loopback (the host is this machine)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_forward_port_reaches_a_server_on_the_host_loopback(
    runner: SSHRunner, http_on_host_loopback: int
) -> None:
    with runner.forward_port(http_on_host_loopback) as local_port:
        assert local_port != http_on_host_loopback
        for path in ("/status", "/config?check_hash=1"):
            url = f"http://127.0.0.1:{local_port}{path}"
            with urllib.request.urlopen(url, timeout=5) as response:
                assert response.read().decode() == f"hello from {path}"
    # The tunnel is gone afterwards.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", local_port), timeout=2).close()


def test_forward_to_a_closed_port_fails_that_request_only(
    sshd: LocalSshd, runner: SSHRunner
) -> None:
    closed = sshd.free_port()
    with runner.forward_port(closed) as local_port:
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{local_port}/", timeout=5)
        # The runner is unaffected.
        assert runner.run(["echo", "ok"]).stdout == "ok\n"


# -- a cut network, not a closed socket ---------------------------------------------------


def _netns_unavailable() -> str | None:
    if not shutil.which("unshare") or not shutil.which("iptables"):
        return "needs unshare and iptables (docker.io pulls in iptables)"
    probe = subprocess.run(
        ["unshare", "-n", "sh", "-c", "ip link set lo up && iptables -L INPUT -n"],
        capture_output=True,
        timeout=30,
    )
    if probe.returncode != 0:
        return f"cannot make a network namespace here: {probe.stderr.decode(errors='replace')}"
    return None


def test_silently_dropped_packets_are_connection_lost_within_keepalive_bound(
    tmp_path: Path,
) -> None:
    """No FIN, no RST: packets just vanish. Keepalive + TCP_USER_TIMEOUT must notice.

    Runs in a private network namespace (its own 127.0.0.1) so the DROP rule touches
    nothing else on the machine.
    """
    # Imported here, not at the top: tests/conftest.py's pytest_plugins must be first to
    # import (and assertion-rewrite) the fixture module.
    from tests.rigs.local_sshd import sshd_unavailable

    reason = sshd_unavailable() or _netns_unavailable()
    if reason:
        pytest.skip(reason)
    child = subprocess.run(
        [
            "unshare",
            "-n",
            sys.executable,
            __file__,
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])},
    )
    assert child.returncode == 0, child.stderr
    report = json.loads(child.stdout.strip().splitlines()[-1])
    print(f"cut network noticed after {report['elapsed']:.1f}s")
    assert report["error"] == "ConnectionLost", report
    # keepalive 1s + TCP_USER_TIMEOUT 3s, plus slack for a loaded machine.
    assert report["elapsed"] < 12, report


def _blackhole_child(workdir: str) -> None:
    """Inside `unshare -n`: connect, start a long command, drop all packets, report."""
    from tests.rigs.local_sshd import start_sshd

    subprocess.run(["ip", "link", "set", "lo", "up"], check=True, timeout=10)
    with start_sshd(Path(workdir) / "sshd") as server:
        runner = SSHRunner(
            "app-1",
            server.address,
            server.port,
            server.user,
            server.key_path,
            connect_timeout=5,
            known_hosts=None,
            keepalive=1,
        )
        runner.connect()
        cut_at: list[float] = []

        def cut() -> None:
            time.sleep(0.5)
            for direction in ("--dport", "--sport"):
                subprocess.run(
                    [
                        "iptables",
                        "-A",
                        "INPUT",
                        "-p",
                        "tcp",
                        direction,
                        str(server.port),
                        "-j",
                        "DROP",
                    ],
                    check=True,
                    timeout=10,
                )
            cut_at.append(time.monotonic())

        threading.Thread(target=cut, daemon=True).start()
        error = "none"
        try:
            runner.run(["sleep", "40"], timeout=60)
        except RunnerError as exc:
            error = type(exc).__name__
        elapsed = time.monotonic() - cut_at[0] if cut_at else -1.0
        runner.close()
    print(json.dumps({"error": error, "elapsed": elapsed}))


if __name__ == "__main__":  # the child of the dropped-packets test, inside `unshare -n`
    _blackhole_child(sys.argv[1])
