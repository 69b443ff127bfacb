"""Where an SSH connection's time goes, phase by phase, on a sandbox host: TCP connect and
key exchange, authentication, opening the first session channel, and one `true` run on it;
with hostctl's transport and with the two it replaced, in turns, ROUNDS times each.

Nagle's algorithm holds a small message until the peer has acknowledged the one before;
the peer delays that ACK (40 ms on Linux) while it has nothing to send back. The handshake
and authentication are exchanges of small messages, so the phase where one side sends two
in a row pays that wait. On the client's side TCP_NODELAY ends it (set before the
handshake, not after authentication). The host's sshd keeps Nagle on until a command starts,
and sends its host keys (a global request wanting no answer) right before confirming the
first channel: hostctl's transport answers it with SSH_MSG_IGNORE, which carries the ACK at
once. What remains of the first channel's open is the host's own session set-up (sshd's
post-authentication process and PAM's session modules); kept connections (`ssh.persist`)
pay it once.

Run: python bench/ssh_phases.py [--rounds R]
(needs root and a Docker engine; boots one sandbox host, taking turns with test sessions
through the rig's session lock, and removes it after). The host key is not checked here (a
sandbox host makes new ones at every boot): only the timing is measured.
"""

from __future__ import annotations

import socket
import statistics
import time

from bench.sandbox_session import arg, booted, write_bench_site
from hostctl.runner.ssh import _PromptTransport  # imports paramiko as hostctl does

# isort: split
import paramiko

PHASES = ("connect+kex", "auth", "open", "exec")


# variant -> what it is, in the order printed
VARIANTS = {
    "now": "hostctl's transport (TCP_NODELAY first, the host's request answered)",
    "nodelay": "TCP_NODELAY before the handshake only (hostctl before)",
    "late": "TCP_NODELAY after authentication (hostctl before that)",
}


def phases(address: str, port: int, user: str, key: paramiko.PKey,
           variant: str) -> list[float]:
    """Seconds per phase of one connection opened the way `variant` names."""
    t0 = time.perf_counter()
    sock = socket.create_connection((address, port), timeout=10)
    if variant == "nodelay":
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    transport = _PromptTransport(sock) if variant == "now" else paramiko.Transport(sock)
    try:
        transport.start_client(timeout=10)
        t1 = time.perf_counter()
        transport.auth_publickey(user, key)
        if variant == "late":
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t2 = time.perf_counter()
        chan = transport.open_session(timeout=10)
        t3 = time.perf_counter()
        chan.exec_command("true")
        status = chan.recv_exit_status()
        t4 = time.perf_counter()
    finally:
        transport.close()
    if status != 0:
        raise SystemExit(f"`true` exited {status} on the sandbox host")
    return [t1 - t0, t2 - t1, t3 - t2, t4 - t3]


def main() -> None:
    rounds = int(arg("--rounds", "15"))
    with booted(["edge-1"], lambda root: write_bench_site(root, ["edge-1"], [])) as b:
        host = b.hosts["edge-1"]
        key = paramiko.Ed25519Key.from_private_key_file(str(host.key_path))
        runs: dict[str, list[list[float]]] = {v: [] for v in VARIANTS}
        for variant in VARIANTS:  # one of each first: the host's caches warm up
            phases(host.ssh_host, host.ssh_port, host.ssh_user, key, variant)
        for _ in range(rounds):
            for variant in VARIANTS:
                runs[variant].append(phases(host.ssh_host, host.ssh_port, host.ssh_user,
                                            key, variant))
    for variant, label in VARIANTS.items():
        medians = [statistics.median(r[i] for r in runs[variant]) * 1000
                   for i in range(len(PHASES))]
        total = statistics.median(sum(r) for r in runs[variant]) * 1000
        shown = ", ".join(f"{p} {m:.1f} ms" for p, m in zip(PHASES, medians, strict=True))
        print(f"{label}: {shown}; total {total:.1f} ms (medians of {rounds})")


if __name__ == "__main__":
    main()
