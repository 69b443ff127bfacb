"""Boot, list and remove sandbox hosts: containers that behave like small Linux servers.

Each host is a container running systemd as PID 1 with sshd and its own dockerd, reachable
over SSH on a loopback port and by its address on the rig's own Docker network.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import docker
from docker.errors import APIError, NotFound
from docker.models.containers import Container

from hostctl.sandbox import container_spec as spec
from hostctl.sandbox import readiness
from hostctl.sandbox.engine import connect, ensure_engine
from hostctl.sandbox.errors import SandboxError
from hostctl.sandbox.host_image import ensure_host_image
from hostctl.sandbox.image_transfer import pipe_image
from hostctl.sandbox.locking import file_lock
from hostctl.sandbox.models import SandboxHost, SandboxHostRequest
from hostctl.sandbox.progress import Progress, print_progress
from hostctl.sandbox.ssh_key import authorized_keys_tar, ensure_keypair, public_key

STATE_FILE = "hosts.json"
BOOT_TIMEOUT = 120.0
# Long enough for systemd to start or fail; a container that cannot boot exits well before.
FIRST_SIGNS_TIMEOUT = 20.0


@dataclass(frozen=True)
class Teardown:
    """What `down` removed, by name."""

    containers: list[str]
    volumes: list[str]
    networks: list[str]


def up(
    requests: Sequence[SandboxHostRequest],
    state_dir: Path,
    *,
    timeout: float = BOOT_TIMEOUT,
    progress: Progress = print_progress,
) -> list[SandboxHost]:
    """Boot (or reuse) one sandbox host per request, in parallel, and record them in hosts.json."""
    _check_unique(requests)
    client = ensure_engine()
    image = ensure_host_image(client, progress=progress)
    image_id = str(client.images.get(image).id)
    state_dir = Path(state_dir).resolve()
    key_path = ensure_keypair(state_dir)
    with file_lock("hosts"):
        ensure_network(client)
        with ThreadPoolExecutor(max_workers=max(1, len(requests))) as pool:
            futures = [
                pool.submit(_bring_up, client, r, (image, image_id), key_path, timeout, progress)
                for r in requests
            ]
            hosts = [f.result() for f in futures]
    write_state(state_dir, hosts)
    return hosts


def down(state_dir: Path | None = None) -> Teardown:
    """Remove every container, volume and network labelled io.hostctl.sandbox, and hosts.json.

    Nothing without that label is touched; images are kept so the next `up` is quick.
    """
    client = connect()
    teardown = Teardown([], [], [])
    if client is not None:
        with file_lock("hosts"):
            teardown = _remove_all(client)
    if state_dir is not None:
        (Path(state_dir) / STATE_FILE).unlink(missing_ok=True)
    return teardown


def list_hosts(client: docker.DockerClient | None = None) -> list[SandboxHost]:
    """The sandbox hosts whose containers are running now, sorted by name."""
    client = client or connect()
    if client is None:
        return []
    containers = client.containers.list(filters=spec.SANDBOX_FILTER)
    return sorted((describe(c) for c in containers), key=lambda h: h.name)


def load_image(host: SandboxHost, image_ref: str, client: docker.DockerClient | None = None) -> str:
    """Copy an image from this machine's engine into the host's engine (`docker load`).

    A test helper: hostctl's deploy moves images over SSH itself. Returns docker load's output.
    """
    client = client or ensure_engine()
    container = client.containers.get(host.container_name)
    return pipe_image(client, image_ref, container)


def ensure_network(client: docker.DockerClient) -> None:
    """Create the rig's bridge network unless it exists."""
    # The engine's name filter matches substrings; only the exact name counts.
    existing = client.networks.list(names=[spec.NETWORK], filters=spec.SANDBOX_FILTER)
    if any(network.name == spec.NETWORK for network in existing):
        return
    client.networks.create(
        spec.NETWORK, driver="bridge", labels=spec.network_labels(), check_duplicate=True
    )


def ensure_volume(client: docker.DockerClient, host: str) -> None:
    """Create the host's labelled /var/lib/docker volume unless it exists.

    Made explicitly because a volume the engine creates implicitly for a container carries no
    labels, and `down` could not find it.
    """
    name = spec.volume_name(host)
    try:
        volume = client.volumes.get(name)
    except NotFound:
        client.volumes.create(name, labels=spec.resource_labels(host))
        return
    if (volume.attrs.get("Labels") or {}).get(spec.LABEL) != "1":
        raise SandboxError(f"volume {name} exists but was not made by the rig; remove it by hand")


def describe(container: Container) -> SandboxHost:
    """A SandboxHost for a running sandbox container, from its labels and network settings."""
    container.reload()
    labels = container.labels
    settings = container.attrs["NetworkSettings"]
    try:
        address = settings["Networks"][spec.NETWORK]["IPAddress"]
        port = int(settings["Ports"]["22/tcp"][0]["HostPort"])
    except (KeyError, IndexError, TypeError) as error:
        raise SandboxError(f"{container.name}: no address or SSH port yet ({error})") from error
    return SandboxHost(
        name=labels[spec.HOST_LABEL],
        address=address,
        ssh_host="127.0.0.1",
        ssh_port=port,
        ssh_user="root",
        key_path=Path(labels[spec.KEY_LABEL]),
        container_name=container.name,
        labels=json.loads(labels.get(spec.INVENTORY_LABELS_LABEL, "{}")),
        gpus=int(labels.get(spec.GPUS_LABEL, "0")),
    )


def write_state(state_dir: Path, hosts: Sequence[SandboxHost]) -> Path:
    """Record the hosts in state_dir/hosts.json (replaced atomically) and return its path."""
    path = state_dir / STATE_FILE
    scratch = path.with_suffix(".json.tmp")
    scratch.write_text(json.dumps({"hosts": [h.to_json() for h in hosts]}, indent=2) + "\n")
    os.replace(scratch, path)
    return path


def read_state(state_dir: Path) -> list[SandboxHost]:
    """The hosts recorded by the last `up` into state_dir."""
    data = json.loads((state_dir / STATE_FILE).read_text())
    return [SandboxHost.from_json(h) for h in data["hosts"]]


def _check_unique(requests: Sequence[SandboxHostRequest]) -> None:
    names = [r.name for r in requests]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"sandbox host names must be unique; repeated: {', '.join(duplicates)}")


def _bring_up(
    client: docker.DockerClient,
    request: SandboxHostRequest,
    image: tuple[str, str],
    key_path: Path,
    timeout: float,
    progress: Progress,
) -> SandboxHost:
    """Reuse or boot one host; `image` is the host image's (tag, id)."""
    started = time.monotonic()
    reused = _reusable(client, request, image[1], key_path)
    if reused is not None:
        progress(f"sandbox host {request.name}: reusing running {reused.container_name}")
        return reused
    container = _boot(client, request, image[0], key_path)
    host = describe(container)
    readiness.wait_ready(container, host, timeout)
    progress(f"sandbox host {request.name}: ready in {time.monotonic() - started:.1f}s")
    return host


def _reusable(
    client: docker.DockerClient, request: SandboxHostRequest, image_id: str, key_path: Path
) -> SandboxHost | None:
    """The existing host of this name if it is running, current and healthy; else remove it."""
    try:
        container = client.containers.get(spec.container_name(request.name))
    except NotFound:
        return None
    if container.labels.get(spec.LABEL) != "1":
        raise SandboxError(
            f"container {container.name} exists but was not made by the rig; remove it by hand"
        )
    if _matches(container, request, image_id, key_path):
        host = describe(container)
        try:
            readiness.wait_ready(container, host, timeout=10)
            return host
        except SandboxError:
            pass  # unhealthy: replaced below
    container.remove(force=True)
    return None


def _matches(
    container: Container, request: SandboxHostRequest, image_id: str, key_path: Path
) -> bool:
    labels = container.labels
    wanted = spec.container_labels(request, key_path, privileged=False)
    same_labels = all(
        labels.get(k) == wanted[k]
        for k in (spec.INVENTORY_LABELS_LABEL, spec.GPUS_LABEL, spec.KEY_LABEL)
    )
    same_image = container.attrs.get("Image") == image_id
    return container.status == "running" and same_labels and same_image


def _boot(
    client: docker.DockerClient, request: SandboxHostRequest, image: str, key_path: Path
) -> Container:
    """Start the host container: capabilities first, --privileged only if that cannot boot."""
    ensure_volume(client, request.name)
    failures = []
    for privileged in (False, True):
        mode = "--privileged" if privileged else "capabilities"
        try:
            container = client.containers.create(
                **spec.create_kwargs(request, image, key_path, privileged=privileged)
            )
        except APIError as error:
            failures.append(f"{mode}: {error.explanation or error}")
            continue
        # In place before the first boot, so sshd never runs without our key.
        container.put_archive("/root", authorized_keys_tar(public_key(key_path)))
        failure = _start(container)
        if failure is None:
            return container
        failures.append(f"{mode}: {failure}")
        container.remove(force=True)
    raise SandboxError(
        f"sandbox host {request.name} would not boot systemd:\n" + "\n".join(failures)
    )


def _start(container: Container) -> str | None:
    """Start the container and wait for systemd to answer; None on success, else why not."""
    try:
        container.start()
    except APIError as error:
        return str(error.explanation or error)
    deadline = time.monotonic() + FIRST_SIGNS_TIMEOUT
    for _ in range(int(FIRST_SIGNS_TIMEOUT / readiness.POLL_SECONDS) + 1):
        container.reload()
        if container.status != "running":
            return f"container {container.status}: {readiness.log_tail(container, 10)}"
        _, state = readiness.exec_text(container, ["systemctl", "is-system-running"])
        # Any state word means systemd is PID 1 and answering on its bus; before that,
        # systemctl only says it cannot connect.
        if state in readiness.SYSTEMD_STATES:
            return None
        if time.monotonic() >= deadline:
            break
        time.sleep(readiness.POLL_SECONDS)
    tail = readiness.log_tail(container, 10)
    return f"systemd did not answer within {FIRST_SIGNS_TIMEOUT:.0f}s: {tail}"


def _remove_all(client: docker.DockerClient) -> Teardown:
    containers = client.containers.list(all=True, filters=spec.SANDBOX_FILTER)
    with ThreadPoolExecutor(max_workers=max(1, len(containers))) as pool:
        list(pool.map(lambda c: c.remove(force=True), containers))
    volumes = client.volumes.list(filters=spec.SANDBOX_FILTER)
    for volume in volumes:
        volume.remove(force=True)
    networks = client.networks.list(filters=spec.SANDBOX_FILTER)
    for network in networks:
        _disconnect_strangers(network)
        network.remove()
    return Teardown(
        containers=sorted(c.name for c in containers),
        volumes=sorted(v.name for v in volumes),
        networks=sorted(n.name for n in networks),
    )


def _disconnect_strangers(network: docker.models.networks.Network) -> None:
    # A container someone else attached to our network would block its removal; it is
    # detached (not removed): it is not ours to delete.
    network.reload()
    for container in network.containers:
        network.disconnect(container, force=True)
