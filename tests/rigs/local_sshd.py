"""A real OpenSSH sshd on 127.0.0.1 for runner tests: throwaway keys, temp dir, root login.

Needs /usr/sbin/sshd (Debian: `apt-get install openssh-server`) and root (sshd's privilege
separation and logging in as root). Tests skip with that reason when either is missing.

tests/conftest.py loads it as a plugin: a test takes a `sshd` argument, or calls
`start_sshd(tmpdir)` directly.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SSHD = "/usr/sbin/sshd"
START_TIMEOUT = 10.0


@dataclass
class LocalSshd:
    """A running sshd and the keys to reach it."""

    address: str
    port: int
    user: str
    key_path: Path
    """Authorised client key (ed25519, no passphrase)."""
    wrong_key_path: Path
    """A valid key that is NOT authorised."""
    host_key_path: Path
    log_path: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    @staticmethod
    def free_port() -> int:
        """A 127.0.0.1 port nothing listens on (for "connection refused" tests)."""
        return free_port()

    def log(self) -> str:
        """sshd's log so far (for assertion messages)."""
        return self.log_path.read_text(errors="replace")

    def session_pids(self) -> list[int]:
        """Every process below the listening sshd: per-connection sshd and their commands."""
        return _descendants(self.process.pid)

    def kill_sessions(self) -> list[int]:
        """SIGKILL every per-connection sshd (cutting the connections), then whatever those
        sessions were running. Returns the command pids that were running (now killed)."""
        pids = self.session_pids()
        sshds = [p for p in pids if _comm(p) == "sshd"]
        others = [p for p in pids if p not in sshds]
        for pid in sshds:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in others:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return others


def sshd_unavailable() -> str | None:
    """Why a real sshd cannot run here, or None if it can."""
    if not os.path.exists(SSHD):
        return f"{SSHD} missing: apt-get install openssh-server"
    if not shutil.which("ssh-keygen"):
        return "ssh-keygen missing: apt-get install openssh-client"
    if os.geteuid() != 0:
        return "sshd tests log in as root and need to run as root"
    return None


def keygen(path: Path, comment: str = "hostctl-test") -> Path:
    """A fresh ed25519 key pair at `path` (and `path.pub`), no passphrase."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        timeout=30,
    )
    return path


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def start_sshd(workdir: Path) -> Iterator[LocalSshd]:
    """Start sshd on a free 127.0.0.1 port with keys under `workdir`; stop it on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    host_key = keygen(workdir / "host_ed25519", "hostctl-test-host")
    client_key = keygen(workdir / "client_ed25519")
    wrong_key = keygen(workdir / "wrong_ed25519")
    authorized = workdir / "authorized_keys"
    authorized.write_text(client_key.with_suffix(".pub").read_text())
    authorized.chmod(0o600)
    log_path = workdir / "sshd.log"
    # Privilege separation directory; Debian's package creates it only via its unit.
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)

    for _attempt in range(3):  # the free port may be taken between probe and bind
        port = free_port()
        config = workdir / "sshd_config"
        config.write_text(_config(port, host_key, authorized, workdir / "sshd.pid"))
        check = subprocess.run([SSHD, "-t", "-f", str(config)], capture_output=True, timeout=30)
        if check.returncode != 0:
            raise RuntimeError(f"sshd config rejected: {check.stderr.decode(errors='replace')}")
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(config)],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
        if _wait_for_banner(port, proc):
            break
        _stop(proc)
    else:
        raise RuntimeError(f"sshd did not start: {log_path.read_text(errors='replace')}")

    server = LocalSshd(
        address="127.0.0.1",
        port=port,
        user="root",
        key_path=client_key,
        wrong_key_path=wrong_key,
        host_key_path=host_key,
        log_path=log_path,
        process=proc,
    )
    try:
        yield server
    finally:
        leftovers = server.session_pids()
        _stop(proc)
        for pid in leftovers:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSshd]:
    """One real sshd for the whole test session (skips when sshd cannot run here)."""
    reason = sshd_unavailable()
    if reason:
        pytest.skip(reason)
    with start_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


def _config(port: int, host_key: Path, authorized: Path, pid_file: Path) -> str:
    return "\n".join(
        [
            f"Port {port}",
            "ListenAddress 127.0.0.1",
            f"HostKey {host_key}",
            f"PidFile {pid_file}",
            f"AuthorizedKeysFile {authorized}",
            # The temp dir's parents are not root-only; sshd would otherwise refuse the key.
            "StrictModes no",
            "PermitRootLogin prohibit-password",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "AllowTcpForwarding local",
            "PermitOpen 127.0.0.1:*",
            "MaxSessions 20",
            "LogLevel VERBOSE",
            "PrintMotd no",
            "",
        ]
    )


def _wait_for_banner(port: int, proc: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(4).startswith(b"SSH-"):
                    return True
        except OSError:
            time.sleep(0.05)
    return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may contain spaces; ppid follows it.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found
