"""The behaviour every real backend promises, run against LocalRunner and SSHRunner alike.

The SSH side talks to a real OpenSSH sshd on 127.0.0.1 (tests/rigs/local_sshd.py), no mocks.
"""

from __future__ import annotations

import hashlib
import os
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from hostctl.runner import CommandTimeout, LocalRunner, Result, Runner, SSHRunner
from hostctl.runner.persist_client import PersistentRunner

if TYPE_CHECKING:
    from tests.rigs.local_sshd import LocalSshd

HOSTILE = [
    "it's",
    'say "hi"',
    "$HOME",
    "${PATH}",
    "`id`",
    "$(id)",
    "a b  c",
    " lead and trail ",
    "new\nline",
    "\n",
    "tab\tx",
    "back\\slash\\",
    "*",
    "~",
    "; rm -rf /nonexistent",
    "&& echo pwned",
    "| cat",
    "> /tmp/x",
    "-n",
    "--",
    "",
    "ünï©ødé ✓",
    "!event",
    "#not a comment",
    "{a,b}",
    "%s %% %d",
    "'\"'\"'",
]


@pytest.fixture(params=["local", "ssh", "persist"])
def runner(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runner]:
    if request.param == "local":
        yield LocalRunner("local")
        return
    sshd: LocalSshd = request.getfixturevalue("sshd")
    if request.param == "persist":  # through the connection keeper (ssh.persist)
        request.getfixturevalue("persist_dir")
        kept = PersistentRunner({
            "host": "test-host", "address": sshd.address, "port": sshd.port,
            "user": sshd.user, "key_path": str(sshd.key_path), "connect_timeout": 5,
            "known_hosts": str(tmp_path / "known_hosts"), "strict": False}, persist=30)
        try:
            yield kept
        finally:
            kept.close()
        return
    ssh = SSHRunner(
        "test-host",
        sshd.address,
        sshd.port,
        sshd.user,
        sshd.key_path,
        connect_timeout=5,
        known_hosts=tmp_path / "known_hosts",
    )
    try:
        yield ssh
    finally:
        ssh.close()


def test_hostile_argv_reaches_the_command_byte_exact(runner: Runner) -> None:
    result = runner.run(["printf", "[%s]", *HOSTILE])
    assert result == Result(0, "".join(f"[{arg}]" for arg in HOSTILE), "")


def test_script_runs_under_sh_and_reports_its_exit_code(runner: Runner) -> None:
    script = 'x="two words"; echo "$x"; echo oops >&2; false || exit 7'
    assert runner.run(script) == Result(7, "two words\n", "oops\n")


def test_non_zero_exit_is_a_result_not_an_error(runner: Runner) -> None:
    result = runner.run(["sh", "-c", "exit 42"])
    assert (result.rc, result.ok) == (42, False)
    assert runner.run(["true"]).ok


def test_stdin_bytes_pass_through_unchanged(runner: Runner) -> None:
    data = bytes(range(256)) * 1000 + "ünï\r\n\x00".encode()
    result = runner.run(["sha256sum"], stdin=data)
    assert result.stdout.split()[0] == hashlib.sha256(data).hexdigest()
    assert runner.run(["cat"], stdin=b"line 1\nline 2").stdout == "line 1\nline 2"


def test_without_stdin_a_reading_command_sees_eof_at_once(runner: Runner) -> None:
    assert runner.run(["cat"], timeout=10) == Result(0, "", "")


def test_undecodable_output_is_replaced_not_fatal(runner: Runner) -> None:
    result = runner.run(["printf", "ok \\377\\376 end"])
    assert result.stdout == "ok \ufffd\ufffd end"


def test_large_stdin_and_stdout_at_once_do_not_deadlock(runner: Runner) -> None:
    # 8 MB in and out: more than the SSH window and the pipe buffers, so both sides
    # must be drained concurrently.
    data = b"0123456789abcdef" * (512 * 1024)
    result = runner.run(["sh", "-c", "cat; echo done >&2"], stdin=data, timeout=60)
    assert result == Result(0, data.decode(), "done\n")


def _generated(total: int, size: int = 1024 * 1024) -> Iterator[bytes]:
    """Deterministic chunks made on the fly, never all in memory."""
    block = hashlib.sha256(b"seed").digest() * (size // 32)
    for i in range(total // size):
        yield i.to_bytes(8, "big") + block[8:]


def test_stream_in_50mb_matches_local_hash_with_bounded_memory(runner: Runner) -> None:
    total = 50 * 1024 * 1024
    expected = hashlib.sha256()
    for chunk in _generated(total):
        expected.update(chunk)

    tracemalloc.start()
    try:
        started = time.monotonic()
        result = runner.stream_in(["sha256sum"], _generated(total), timeout=120)
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert result.rc == 0, result
    assert result.stdout.split()[0] == expected.hexdigest()
    # A handful of 1 MB chunks and channel buffers in flight, nowhere near the 50 MB sent.
    assert peak < 12 * 1024 * 1024, f"peak traced memory {peak / 2**20:.1f} MiB"
    print(f"stream_in 50 MiB: {elapsed:.2f}s, peak {peak / 2**20:.1f} MiB")


def test_stream_in_stops_quietly_when_the_command_stops_reading(runner: Runner) -> None:
    started = time.monotonic()
    result = runner.stream_in(["head", "-c", "5"], _generated(64 * 1024 * 1024), timeout=30)
    assert result.rc == 0
    assert len(result.stdout.encode("utf-8", "surrogateescape")) <= 5 * 3
    assert time.monotonic() - started < 20


def test_a_failing_chunk_source_propagates_and_stops_the_command(runner: Runner) -> None:
    marker = f"/tmp/hostctl-test-{uuid.uuid4().hex}"

    def broken() -> Iterator[bytes]:
        yield b"partial"
        raise OSError("docker save died")

    with pytest.raises(OSError, match="docker save died"):
        runner.stream_in(["sh", "-c", f"cat >/dev/null; touch {marker}"], broken(), timeout=20)
    # The command was stopped, not fed EOF: it never got to act on the truncated input.
    time.sleep(0.5)
    assert not os.path.exists(marker)


def test_timeout_raises_command_timeout_within_bound(runner: Runner) -> None:
    started = time.monotonic()
    with pytest.raises(CommandTimeout) as caught:
        runner.run(["sleep", "30"], timeout=1)
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 5, elapsed
    assert str(caught.value).startswith(runner.host)
    assert "`sleep 30` was still running when its time ran out" in str(caught.value)
    # The runner is still usable afterwards.
    assert runner.run(["echo", "after"]).stdout == "after\n"


def test_timeout_stops_the_command_on_the_host(runner: Runner) -> None:
    tag = f"{uuid.uuid4().int % 10**6 + 10**6}.5"  # a unique `sleep` argument
    with pytest.raises(CommandTimeout):
        runner.run(["sh", "-c", f"sleep {tag}; true"], timeout=1)
    assert _wait_until_gone(tag), f"sleep {tag} still running after the timeout"


def test_timeout_also_bounds_feeding_stdin(runner: Runner) -> None:
    def endless() -> Iterator[bytes]:
        for _ in range(10**6):  # bounded, but far more than a second's worth
            yield b"x" * 65536

    started = time.monotonic()
    with pytest.raises(CommandTimeout):
        runner.stream_in(["sleep", "30"], endless(), timeout=1)
    assert time.monotonic() - started < 5


def test_round_trips_count_every_command(runner: Runner) -> None:
    before = runner.round_trips
    runner.run(["true"])
    runner.run("exit 1")
    runner.stream_in(["cat"], [b"a", b"b"])
    assert runner.round_trips - before == 3


def test_empty_argv_is_refused_before_anything_runs(runner: Runner) -> None:
    with pytest.raises(ValueError, match="empty command"):
        runner.run([])
    assert runner.round_trips == 0


def _wait_until_gone(tag: str, limit: float = 5.0) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if not any(_cmdline(p).startswith(f"sleep\0{tag}") for p in os.listdir("/proc")):
            return True
        time.sleep(0.1)
    return False


def _cmdline(pid: str) -> str:
    if not pid.isdigit():
        return ""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""
