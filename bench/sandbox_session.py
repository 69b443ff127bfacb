"""The sandbox hosts a bench runs on: booted for it, taking turns with test sessions through
the rig's session lock, an inventory written for them, removed after (BENCH_KEEP=1 keeps
them, to look at what the bench left). Also what the benches share: the option reader, and
running a script inside a sandbox host."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from hostctl.cli.sandbox import write_inventory
from hostctl.sandbox import hosts as sandbox_hosts
from hostctl.sandbox.locking import file_lock
from hostctl.sandbox.models import SandboxHost, SandboxHostRequest


def arg(name: str, default: str) -> str:
    """The value after option `name` on the bench's command line, else `default`."""
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


def service_specs(hosts: Sequence[str], per_host: int) -> list[str]:
    """`per_host` small HTTP services pinned to each host, health-checked (the deploy
    benches' workload), as spec documents."""
    docs = []
    for h, host in enumerate(hosts):
        for i in range(per_host):
            n = h * per_host + i
            docs.append(
                f"kind: service\nname: svc-{n}\nproject: bench\nimage: hostctl-demo-app:1.0\n"
                f"env: {{PORT: 8080, N: {n}}}\nports: {{http: {{container: 8080, "
                f"host: {20000 + n}}}}}\n"
                "health: {http: {path: /health, port: http}, interval: 10s, timeout: 2s}\n"
                f"placement: {{hosts: [{host}]}}\n")
    return docs


def write_bench_site(root: Path, hosts: Sequence[str], docs: Sequence[str]) -> Path:
    """A site of `hosts` (addresses stand-ins: the sandbox inventory replaces them) running
    the spec documents `docs`, images pushed; returns its inventory."""
    (root / "specs").mkdir(parents=True)
    (root / "specs" / "bench.yml").write_text("---\n".join(docs))
    inv = root / "site.yml"
    inv.write_text("site: bench\nhosts:\n" + "".join(
        f"  {h}: {{address: 10.9.{i // 200}.{i % 200 + 1}}}\n" for i, h in enumerate(hosts))
        + "specs: [specs/*.yml]\nimage_source: push\n")
    return inv


@dataclass(frozen=True)
class Booted:
    inventory: str  # the inventory pointing at the booted hosts
    hosts: dict[str, SandboxHost]
    root: Path  # where write_site wrote the site


def on_host(host: SandboxHost, script: str, timeout: float = 300) -> str:
    """Run the shell `script` inside the sandbox host (as root, through `docker exec`, not
    SSH: the benches measure hostctl's SSH, not their own); its stdout. Fails loudly."""
    return subprocess.run(["docker", "exec", "-i", host.container_name, "sh", "-s"],
                          input=script.encode(), check=True, capture_output=True,
                          timeout=timeout).stdout.decode()


def host_names(n: int) -> list[str]:
    """The benches' host names: the worked example's three, or node-1..node-N."""
    if n == 3:
        return ["edge-1", "app-1", "gpu-1"]
    return [f"node-{i + 1}" for i in range(n)]


@contextmanager
def booted(hosts: Sequence[str | SandboxHostRequest], write_site: Callable[[Path], Path],
           locked: bool = True) -> Iterator[Booted]:
    """Boot `hosts` (names, or requests with labels and GPUs), write the site with
    `write_site(DIR)` (it returns its inventory). `locked=False`: the caller already holds
    the rig's session lock (one turn for several sandboxes)."""
    requests = [SandboxHostRequest(h) if isinstance(h, str) else h for h in hosts]
    turn = file_lock("session", timeout=1800, on_wait="waiting for the sandbox") \
        if locked else nullcontext()
    with tempfile.TemporaryDirectory() as tmp, turn:
        root = Path(tmp)
        state = root / "state"
        state.mkdir()
        up = sandbox_hosts.up(requests, state)
        try:
            inv = str(write_inventory(str(write_site(root / "site")), up, state))
            yield Booted(inv, {h.name: h for h in up}, root / "site")
        finally:
            if not os.environ.get("BENCH_KEEP"):
                sandbox_hosts.down(state)
