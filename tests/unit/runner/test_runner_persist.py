"""The connection keeper (`ssh.persist`) against a real OpenSSH sshd on 127.0.0.1: commands of
consecutive processes share one connection, errors read as a direct connection's, nobody but
the user can use it, a caller that goes away stops its command, and it goes once idle.

The runner contract itself (argv, stdin, timeouts, streaming) runs through the keeper in
test_runner_contract.py. Only 127.0.0.1 is contacted; every wait is bounded.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner

from hostctl.cli.root import main
from hostctl.runner import persist_wire as wire
from hostctl.runner.base import (
    AuthenticationFailed,
    ConnectionLost,
    HostKeyRejected,
    HostUnreachable,
    RunnerError,
)
from hostctl.runner.persist_client import PersistentRunner, keeper_call, keeper_dir
from hostctl.runner.ssh import STALE_PROBE, SSHRunner
from tests.rigs.keeper_rig import keeper_pid, wait_gone

if TYPE_CHECKING:
    from tests.rigs.local_sshd import LocalSshd

ROOT = Path(__file__).resolve().parents[3]


def settings(sshd: LocalSshd, tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    return {"host": "app-1", "address": sshd.address, "port": sshd.port, "user": sshd.user,
            "key_path": str(sshd.key_path), "connect_timeout": 5,
            "known_hosts": str(tmp_path / "known_hosts"), "strict": False, **overrides}


@pytest.fixture
def kept(sshd: LocalSshd, tmp_path: Path, persist_dir: Path) -> Iterator[PersistentRunner]:
    with PersistentRunner(settings(sshd, tmp_path), persist=30) as r:
        yield r


def stats(directory: Path) -> list[dict[str, Any]]:
    reply = keeper_call(directory, {"op": "stats"})
    assert reply is not None, "no keeper answers"
    connections: list[dict[str, Any]] = reply["connections"]
    return connections


def as_another_process(directory: Path, options: dict[str, Any], command: list[str]) -> str:
    """What a second hostctl command would do: a fresh interpreter, the same keeper."""
    code = ("import json, sys\n"
            "from hostctl.runner.persist_client import PersistentRunner\n"
            "s, cmd = json.loads(sys.argv[1]), json.loads(sys.argv[2])\n"
            "with PersistentRunner(s, persist=30) as r:\n"
            "    res = r.run(cmd, timeout=30)\n"
            "print(res.stdout, end='')\n")
    res = subprocess.run([sys.executable, "-c", code, json.dumps(options), json.dumps(command)],
                         cwd=ROOT, env={**os.environ, "HOSTCTL_PERSIST_DIR": str(directory)},
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return res.stdout


# -- one connection across commands -------------------------------------------------------


def test_consecutive_processes_share_one_connection(sshd: LocalSshd, tmp_path: Path,
                                                    persist_dir: Path) -> None:
    options = settings(sshd, tmp_path)
    outputs = [as_another_process(persist_dir, options, ["sh", "-c", "echo $PPID"])
               for _ in range(3)]
    # each command is its own session under the same per-connection sshd
    assert len(set(outputs)) == 1, outputs
    [conn] = stats(persist_dir)
    assert (conn["host"], conn["connects"], conn["connected"]) == ("app-1", 1, True)


def test_a_runner_reports_the_round_trips_and_connects_it_caused(kept: PersistentRunner,
                                                                  persist_dir: Path) -> None:
    kept.connect()
    assert kept.run(["echo", "hi"]).stdout == "hi\n"
    assert kept.run("exit 3").rc == 3
    assert (kept.connects, kept.round_trips) == (1, 2)
    assert keeper_pid(persist_dir) is not None


def test_other_ssh_settings_get_a_connection_of_their_own(sshd: LocalSshd, tmp_path: Path,
                                                          persist_dir: Path) -> None:
    first = settings(sshd, tmp_path)
    second = settings(sshd, tmp_path, host="app-2")
    for options in (first, second, first):
        with PersistentRunner(options, persist=30) as r:
            assert r.run(["true"]).ok
    assert sorted((c["host"], c["connects"]) for c in stats(persist_dir)) == [
        ("app-1", 1), ("app-2", 1)]


def test_a_connection_cut_while_kept_is_replaced_and_the_command_runs_once(
        sshd: LocalSshd, tmp_path: Path, persist_dir: Path) -> None:
    marker = tmp_path / "ran"
    with PersistentRunner(settings(sshd, tmp_path), persist=30) as r:
        assert r.run(["true"]).ok
    sshd.kill_sessions()  # the host ends the kept connection (a reboot, sshd restarted)
    with PersistentRunner(settings(sshd, tmp_path), persist=30) as r:
        assert r.run(["sh", "-c", f"echo x >> {marker}"]).ok
        assert r.connects == 1
    assert marker.read_text() == "x\n"


def test_a_kept_connection_that_no_longer_answers_is_replaced(
        sshd: LocalSshd, tmp_path: Path, persist_dir: Path) -> None:
    """The host's end frozen (no FIN, no answer: a path gone while idle): the channel it
    cannot open within STALE_PROBE is given up, nothing sent on it, and a new connection
    runs the command once."""
    marker = tmp_path / "ran"
    with PersistentRunner(settings(sshd, tmp_path), persist=30) as r:
        assert r.run(["true"]).ok
    frozen = sshd.session_pids()
    assert frozen
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    try:
        with PersistentRunner(settings(sshd, tmp_path), persist=30) as r:
            started = time.monotonic()
            assert r.run(["sh", "-c", f"echo x >> {marker}"]).ok
            assert time.monotonic() - started < STALE_PROBE + 3
            assert r.connects == 1
    finally:
        for pid in frozen:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                os.kill(pid, signal.SIGCONT)
    assert marker.read_text() == "x\n"
    [conn] = stats(persist_dir)
    assert (conn["connects"], conn["connected"]) == (2, True)


# -- errors, as a direct connection words them --------------------------------------------


def _silent_port() -> Iterator[int]:
    with socket.create_server(("127.0.0.1", 0)) as silent:
        yield silent.getsockname()[1]


FAILURES: list[Any] = [
    pytest.param(lambda sshd, tmp: {"port": sshd.free_port()}, HostUnreachable, id="refused"),
    pytest.param(lambda sshd, tmp: {"key_path": str(sshd.wrong_key_path)},
                 AuthenticationFailed, id="unauthorised-key"),
    pytest.param(lambda sshd, tmp: {"key_path": str(tmp / "nope")}, AuthenticationFailed,
                 id="missing-key"),
    pytest.param(lambda sshd, tmp: {"strict": True}, HostKeyRejected, id="strict-unknown"),
    pytest.param(lambda sshd, tmp: {"known_hosts": _changed_key_file(sshd, tmp)},
                 HostKeyRejected, id="changed-host-key"),
]


def _changed_key_file(sshd: LocalSshd, tmp: Path) -> str:
    other = tmp / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)],
                   check=True, timeout=30)
    path = tmp / "changed_known_hosts"
    key = other.with_suffix(".pub").read_text().split()[:2]
    path.write_text(f"[127.0.0.1]:{sshd.port} {key[0]} {key[1]}\n")
    return str(path)


@pytest.mark.parametrize(("change", "error"), FAILURES)
def test_a_failure_reads_as_a_direct_connections(
        sshd: LocalSshd, tmp_path: Path, persist_dir: Path,
        change: Callable[[LocalSshd, Path], dict[str, Any]], error: type[RunnerError]) -> None:
    options = settings(sshd, tmp_path, **change(sshd, tmp_path))
    with pytest.raises(error) as direct:
        SSHRunner(**options).run(["true"])
    with PersistentRunner(options, persist=30) as r, pytest.raises(error) as through:
        r.run(["true"])
    assert str(through.value) == str(direct.value)
    assert (through.value.host, through.value.target) == ("app-1", direct.value.target)


def test_a_silent_host_fails_within_the_connect_timeout(sshd: LocalSshd, tmp_path: Path,
                                                        persist_dir: Path) -> None:
    for port in _silent_port():
        with PersistentRunner(settings(sshd, tmp_path, port=port, connect_timeout=1),
                              persist=30) as r:
            started = time.monotonic()
            with pytest.raises(HostUnreachable, match="did not speak SSH within 1s"):
                r.connect()
            assert time.monotonic() - started < 3


# -- who may use it, and what is left behind ----------------------------------------------


def test_the_folder_and_socket_are_the_users_alone(kept: PersistentRunner,
                                                   persist_dir: Path) -> None:
    assert kept.run(["true"]).ok
    assert persist_dir.stat().st_mode & 0o777 == 0o700
    sock = wire.socket_path(persist_dir)
    assert sock.stat().st_mode & 0o777 == 0o600


def test_a_folder_others_can_enter_is_not_used(sshd: LocalSshd, tmp_path: Path,
                                               persist_dir: Path) -> None:
    persist_dir.chmod(0o755)
    assert keeper_dir() is None
    with PersistentRunner(settings(sshd, tmp_path), persist=30) as r:
        assert r.run(["echo", "direct"]).stdout == "direct\n"
        assert r.connects == 0 and r._direct is not None and r._direct.connects == 1
    assert not list(persist_dir.glob("*.sock"))


def test_another_user_is_not_answered(kept: PersistentRunner, persist_dir: Path) -> None:
    assert kept.run(["true"]).ok
    # Let `nobody` reach the socket, as a careless folder would (a link to it where anyone
    # may go): the keeper's own check on the caller (SO_PEERCRED) is what is left.
    open_dir = Path(tempfile.mkdtemp(prefix="hostctl-keeper-test-", dir="/tmp"))
    open_dir.chmod(0o711)
    sock = open_dir / "keeper.sock"
    os.link(wire.socket_path(persist_dir), sock)
    sock.chmod(0o666)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        os.close(read)
        answer = b"?"
        try:
            os.setgid(65534)
            os.setuid(65534)
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(10)
                s.connect(str(sock))
                s.sendall(wire.encode({"op": "stats"}))
                answer = s.recv(4096) or b"closed"
        except ConnectionError:  # closed before or with the request unread: no answer
            answer = b"closed"
        except Exception as exc:
            answer = type(exc).__name__.encode()
        os.write(write, answer)
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    sock.unlink()
    open_dir.rmdir()
    with os.fdopen(read, "rb") as f:
        assert f.read() == b"closed"
    assert kept.run(["true"]).ok  # and it goes on serving its user


def test_malformed_requests_are_refused_and_the_keeper_carries_on(
        kept: PersistentRunner, persist_dir: Path) -> None:
    assert kept.run(["true"]).ok
    path = str(wire.socket_path(persist_dir))
    for junk in (b"\xff\xff\xff\xff", struct.pack(">I", 5) + b"nope!", b"\x00\x00"):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(path)
            s.sendall(junk)
            s.shutdown(socket.SHUT_WR)
            assert s.recv(4096) == b""  # closed without an answer
    bad = [{"op": "run"}, {"op": "run", "ssh": {"host": 1}, "persist": 5},
           {"op": "dance", "ssh": kept.settings, "persist": 5},
           {"op": "run", "ssh": kept.settings, "persist": 5, "command": [1]},
           {"op": "run", "ssh": kept.settings, "persist": -1, "command": ["true"]}]
    for header in bad:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(path)
            wire.send(s, header)
            if header["op"] in ("connect", "run"):
                assert s.recv(1) == wire.TAKEN  # answered, though nothing is done
            reply, _ = wire.receive(s)
            assert reply["error"] == "BadRequest", (header, reply)
    assert kept.run(["echo", "still"]).stdout == "still\n"


def test_a_caller_that_goes_away_stops_its_command_on_the_host(
        sshd: LocalSshd, tmp_path: Path, persist_dir: Path) -> None:
    pidfile = tmp_path / "pid"  # the sshd is on this machine: its commands' pids are ours
    options = settings(sshd, tmp_path)
    code = ("import json, sys\n"
            "from hostctl.runner.persist_client import PersistentRunner\n"
            "r = PersistentRunner(json.loads(sys.argv[1]), persist=30)\n"
            f"r.run(['sh', '-c', 'echo $$ > {pidfile}; sleep 60'], timeout=120)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, json.dumps(options)], cwd=ROOT,
                            env={**os.environ, "HOSTCTL_PERSIST_DIR": str(persist_dir)})
    try:
        end = time.monotonic() + 30
        while not pidfile.exists() or not pidfile.read_text().strip():
            assert time.monotonic() < end, "the command never started"
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait(10)
    remote = int(pidfile.read_text())
    assert wait_gone(remote, timeout=15), "the command went on after its caller had gone"


def test_the_keeper_closes_idle_connections_and_exits(sshd: LocalSshd, tmp_path: Path,
                                                      persist_dir: Path) -> None:
    with PersistentRunner(settings(sshd, tmp_path), persist=1) as r:
        assert r.run(["true"]).ok
    pid = keeper_pid(persist_dir)
    assert pid is not None
    assert wait_gone(pid, timeout=15), "the keeper outlived its persist"
    assert not list(persist_dir.glob("*.sock"))
    log = (persist_dir / "keeper.log").read_text()
    assert "keeping connections on" in log and "exiting" in log


def test_disconnect_closes_the_kept_connections_and_the_keeper_exits(
        kept: PersistentRunner, persist_dir: Path) -> None:
    assert kept.run(["true"]).ok
    pid = keeper_pid(persist_dir)
    assert pid is not None
    result = CliRunner().invoke(main, ["disconnect"])
    assert (result.exit_code, result.output) == (0, "closed 1 kept connection: app-1\n")
    assert wait_gone(pid)
    again = CliRunner().invoke(main, ["disconnect"])
    assert (again.exit_code, again.output) == (0, "no kept connections\n")


def test_disconnect_lets_a_command_under_way_finish_and_later_ones_connect_directly(
        sshd: LocalSshd, tmp_path: Path, persist_dir: Path) -> None:
    with PersistentRunner(settings(sshd, tmp_path), persist=30) as busy, \
            PersistentRunner(settings(sshd, tmp_path, host="app-2"), persist=30) as later:
        assert busy.run(["true"]).ok and later.run(["true"]).ok
        pid = keeper_pid(persist_dir)
        assert pid is not None
        with ThreadPoolExecutor(1) as pool:
            under_way = pool.submit(busy.run, ["sh", "-c", "sleep 1; echo done"], timeout=30)
            time.sleep(0.3)
            result = CliRunner().invoke(main, ["disconnect"])
            assert result.output == "closed 2 kept connections: app-1, app-2\n"
            assert later.run(["echo", "direct"]).stdout == "direct\n"
            assert under_way.result(timeout=30).stdout == "done\n"
        assert later._direct is not None and later._direct.connects == 1
    assert wait_gone(pid)


def test_a_file_in_the_keepers_place_is_left_alone_and_hosts_connect_directly(
        sshd: LocalSshd, tmp_path: Path, persist_dir: Path) -> None:
    # Something that is not a socket where the keeper's socket goes: not hostctl's to remove
    squatter = wire.socket_path(persist_dir)
    squatter.write_text("not a socket\n")
    started = time.monotonic()
    for host in ("app-1", "app-2", "app-3"):
        with PersistentRunner(settings(sshd, tmp_path, host=host), persist=30) as r:
            assert r.run(["echo", host]).stdout == f"{host}\n"
            assert r._direct is not None
    assert time.monotonic() - started < 30  # no wait for a keeper per host
    assert squatter.read_text() == "not a socket\n"


def test_a_keeper_that_ends_before_taking_a_command_leaves_it_to_a_direct_connection(
        sshd: LocalSshd, tmp_path: Path, persist_dir: Path) -> None:
    """A keeper exiting as the command reaches its socket (here a stand-in that accepts
    and closes without a word): nothing was done, so the command runs directly, once."""
    marker = tmp_path / "ran"
    with socket.socket(socket.AF_UNIX) as fake:
        fake.bind(str(wire.socket_path(persist_dir)))
        fake.listen(8)
        fake.settimeout(10)

        def close_each() -> None:
            for _ in range(2):
                with suppress(OSError):
                    conn, _ = fake.accept()
                    conn.recv(1 << 16)
                    conn.close()

        with ThreadPoolExecutor(1) as pool:
            pool.submit(close_each)
            with PersistentRunner(settings(sshd, tmp_path), persist=30) as r:
                assert r.run(["sh", "-c", f"echo x >> {marker}"]).ok
                assert r._direct is not None and r._direct.connects == 1
    assert marker.read_text() == "x\n"


def test_port_forwards_take_a_direct_connection_of_their_own(kept: PersistentRunner) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(10)

        def answer_once() -> None:
            conn, _ = server.accept()
            with conn:
                conn.sendall(b"hello through the tunnel")

        with ThreadPoolExecutor(1) as pool:
            done = pool.submit(answer_once)
            with kept.forward_port(server.getsockname()[1]) as local_port, \
                    socket.create_connection(("127.0.0.1", local_port), timeout=10) as c:
                assert c.recv(100) == b"hello through the tunnel"
            done.result(timeout=10)
    assert kept._bulk is not None and kept._bulk.connects == 1
    assert kept.run(["echo", "kept"]).stdout == "kept\n" and kept.connects == 1


def test_a_command_that_leaves_before_it_is_taken_leaves_nothing_busy(
        kept: PersistentRunner, persist_dir: Path) -> None:
    """Sent, then gone before the keeper could say TAKEN: nothing stays marked under way
    (a connection marked busy would never be closed, nor the keeper exit)."""
    assert kept.run(["true"]).ok
    path = str(wire.socket_path(persist_dir))
    for _ in range(5):
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(path)
            wire.send(s, {"op": "run", "ssh": kept.settings, "persist": 30,
                          "command": ["true"], "timeout": 10})
    end = time.monotonic() + 10
    while any(c["busy"] for c in stats(persist_dir)):
        assert time.monotonic() < end, stats(persist_dir)
        time.sleep(0.05)


def test_a_keeper_that_never_says_taken_fails_the_command_rather_than_run_it_twice(
        sshd: LocalSshd, tmp_path: Path, persist_dir: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A keeper too starved to answer in time might still take the command later: the
    command is then lost (outcome unknown), never also run directly."""
    from hostctl.runner import persist_client

    monkeypatch.setattr(persist_client, "_ANSWER_MARGIN", 0.5)
    marker = tmp_path / "ran"
    with socket.socket(socket.AF_UNIX) as fake:
        fake.bind(str(wire.socket_path(persist_dir)))
        fake.listen(8)
        fake.settimeout(10)
        held: list[socket.socket] = []

        def hold() -> None:  # reads and keeps the request, says nothing
            conn, _ = fake.accept()
            held.append(conn)

        with ThreadPoolExecutor(1) as pool:
            pool.submit(hold)
            with PersistentRunner(settings(sshd, tmp_path, connect_timeout=1),
                                  persist=30) as r, pytest.raises(ConnectionLost) as lost:
                r.run(["sh", "-c", f"echo x >> {marker}"], timeout=0.5)
        for conn in held:
            conn.close()
    assert "its outcome is unknown" in str(lost.value)
    assert r._direct is None and not marker.exists()
