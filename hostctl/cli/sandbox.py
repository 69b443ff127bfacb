"""`hostctl sandbox up|down|list`: throwaway hosts (systemd + sshd + Docker) in containers."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import click

from hostctl.errors import HostctlError

DEFAULT_STATE = ".sandbox"
DEMO_IMAGE = re.compile(r"^hostctl-demo-app:([A-Za-z0-9_][A-Za-z0-9_.-]*)$")


@click.group()
def sandbox() -> None:
    """Throwaway hosts for trying hostctl and for its tests: containers running systemd,
    sshd and their own Docker engine, reachable by SSH on 127.0.0.1."""


@sandbox.command("up")
@click.option("-i", "--inventory", type=click.Path(dir_okay=False), metavar="FILE",
              help="Boot one host per host of this inventory (same names, labels, GPUs).")
@click.option("--hosts", "count", type=click.IntRange(1, 20), metavar="N",
              help="Boot N plain hosts (sandbox-1..N) instead.")
@click.option("--state", default=DEFAULT_STATE, show_default=True,
              type=click.Path(file_okay=False), help="Where keys and the inventory copy go.")
def sandbox_up(inventory: str | None, count: int | None, state: str) -> None:
    """Boot sandbox hosts and write an inventory pointing at them (its path is printed)."""
    # imported here: keeps hostctl --help and start-up fast
    from hostctl.sandbox import hosts as sandbox_hosts
    from hostctl.sandbox.models import SandboxHostRequest

    if (inventory is None) == (count is None):
        raise click.UsageError("give either -i INVENTORY or --hosts N")
    state_dir = Path(state).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    if inventory is not None:
        # imported here: keeps hostctl --help and start-up fast
        from hostctl.validate import load_site

        site = load_site(inventory)
        requests = [SandboxHostRequest(h.name, dict(h.labels), h.gpus)
                    for h in site.inventory.hosts.values()]
        _build_demo_images({w.image for w in site.workloads})
    else:
        assert count is not None
        requests = [SandboxHostRequest(f"sandbox-{i}") for i in range(1, count + 1)]
    # imported here: keeps hostctl --help and start-up fast
    from hostctl.sandbox.locking import file_lock

    try:
        # Test sessions hold this lock while they use the machine's sandbox hosts.
        with file_lock("session", timeout=1800,
                       on_wait="waiting for a test session that uses the sandbox hosts"):
            booted = sandbox_hosts.up(requests, state_dir)
    except Exception as exc:
        if isinstance(exc, HostctlError):
            raise
        raise HostctlError(f"sandbox: {exc}") from exc
    out = write_inventory(inventory, booted, state_dir)
    for h in booted:
        click.echo(f"{h.name}: {h.address} (ssh {h.ssh_user}@{h.ssh_host} -p {h.ssh_port})",
                   err=True)
    click.echo(str(out))


def _build_demo_images(images: set[str]) -> None:
    """The worked example's app image builds from files in the repo: no registry needed."""
    # imported here: keeps hostctl --help and start-up fast
    from hostctl.sandbox import app_image

    for ref in sorted(images):
        m = DEMO_IMAGE.match(ref)
        if m:
            click.echo(f"building {ref} from inventories/images/demo-app", err=True)
            app_image.build(m.group(1))


def write_inventory(source: str | None, booted: list[Any], state_dir: Path) -> Path:
    """A copy of `source` (or a minimal inventory) whose hosts are the sandbox hosts.

    Paths in the copy are made absolute, so it works from wherever it is read.
    """
    # imported here: keeps hostctl --help and start-up fast
    import yaml

    data: dict[str, Any]
    if source is not None:
        base = os.path.dirname(os.path.abspath(source))
        with open(source, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
        data["specs"] = [os.path.normpath(os.path.join(base, p)) for p in
                         (data["specs"] if isinstance(data["specs"], list) else [data["specs"]])]
        secrets = data.get("secrets") or {}
        if secrets.get("env_file"):
            secrets["env_file"] = os.path.normpath(os.path.join(base, secrets["env_file"]))
        name = Path(source).stem
    else:
        data = {"site": "sandbox", "specs": [str(state_dir / "specs" / "*.yml")]}
        (state_dir / "specs").mkdir(exist_ok=True)
        name = "sandbox"
    # How hostctl reaches the hosts is the sandbox's; whether it keeps connections open
    # (ssh.persist) is the inventory's to say.
    given = data.get("ssh")
    kept = given.get("persist") if isinstance(given, dict) else None
    data["ssh"] = {
        "user": "root",
        "key": str(booted[0].key_path) if booted else "",
        "known_hosts": str(state_dir / "known_hosts"),
        "connect_timeout": "10s",
        **({"persist": kept} if kept is not None else {}),
    }
    # Sandbox hosts have no GPU and no NVIDIA runtime: the test-only gpu_mode `env` lets
    # GPU work take its leases and get device ids in an environment variable instead.
    data["hosts"] = {
        h.name: {
            "address": h.address,
            "labels": dict(h.labels),
            "gpus": h.gpus,
            **({"gpu_mode": "env"} if h.gpus else {}),
            "ssh": {"host": h.ssh_host, "port": h.ssh_port},
        }
        for h in booted
    }
    # Sandbox hosts are new machines with new host keys each boot: forget the old ones.
    (state_dir / "known_hosts").unlink(missing_ok=True)
    out = state_dir / f"{name}.yml"
    tmp = out.with_suffix(".tmp")
    header = "# Written by `hostctl sandbox up`: the inventory with its hosts replaced by\n" \
             "# sandbox hosts. Regenerated on every `sandbox up`; edit the original instead.\n"
    tmp.write_text(header + yaml.safe_dump(data, sort_keys=False))
    os.replace(tmp, out)
    return out


@sandbox.command("down")
@click.option("--state", default=DEFAULT_STATE, show_default=True,
              type=click.Path(file_okay=False), help="The state folder of `sandbox up`.")
def sandbox_down(state: str) -> None:
    """Remove every sandbox host, volume and network hostctl made (nothing else)."""
    # imported here: keeps hostctl --help and start-up fast
    from hostctl.sandbox import hosts as sandbox_hosts
    from hostctl.sandbox.locking import file_lock

    with file_lock("session", timeout=1800,
                   on_wait="waiting for a test session that uses the sandbox hosts"):
        gone = sandbox_hosts.down(Path(state))
    click.echo(f"removed {len(gone.containers)} host(s), {len(gone.volumes)} volume(s), "
               f"{len(gone.networks)} network(s)")


@sandbox.command("list")
def sandbox_list() -> None:
    """Show the sandbox hosts running now."""
    # imported here: keeps hostctl --help and start-up fast
    from hostctl.sandbox import hosts as sandbox_hosts

    for h in sandbox_hosts.list_hosts():
        click.echo(f"{h.name}: {h.address} (ssh {h.ssh_user}@{h.ssh_host} -p {h.ssh_port})")


COMMANDS = (sandbox,)
