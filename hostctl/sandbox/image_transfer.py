"""`docker save` here piped into `docker load` inside a sandbox host, through the engine API."""

from __future__ import annotations

import socket
import time

import docker
from docker.models.containers import Container
from docker.utils.socket import frames_iter

from hostctl.sandbox.errors import SandboxError

_EXIT_POLLS = 40


def pipe_image(client: docker.DockerClient, image_ref: str, container: Container) -> str:
    """Stream image_ref from the local engine into the container's engine; docker load's output.

    This is `docker save REF | docker exec -i CONTAINER docker load` without the CLI: the exec's
    attached socket is stdin, and closing our write side is what ends docker load's input.
    """
    api = client.api
    exec_id = api.exec_create(container.id, ["docker", "load"], stdin=True)["Id"]
    attached = api.exec_start(exec_id, socket=True)
    raw: socket.socket = getattr(attached, "_sock", attached)
    try:
        for chunk in api.get_image(image_ref):
            raw.sendall(chunk)
        raw.shutdown(socket.SHUT_WR)
        output = b"".join(data for _, data in frames_iter(attached, tty=False))
    finally:
        attached.close()
    text = output.decode(errors="replace").strip()
    code = _exit_code(api, exec_id)
    if code != 0:
        raise SandboxError(f"docker load of {image_ref} in {container.name} exited {code}: {text}")
    return text


def _exit_code(api: docker.APIClient, exec_id: str) -> int | None:
    # The stream can end a moment before the engine records the exit code.
    for _ in range(_EXIT_POLLS):
        info = api.exec_inspect(exec_id)
        if not info.get("Running"):
            return info.get("ExitCode")
        time.sleep(0.05)
    return None
