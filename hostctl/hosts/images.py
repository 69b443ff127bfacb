"""Getting images onto hosts: pull from a registry, or push from this machine without one.

`push` streams `docker save` from the local engine into `docker load` on the host, so a
multi-GB image never sits in memory, and it is only sent when the host lacks that image id.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import quote

from hostctl.errors import HostctlError
from hostctl.hosts.facts import normalise_ref
from hostctl.runner.base import Result, Runner

CHUNK = 1 << 20
DEFAULT_SOCKET = "/var/run/docker.sock"
_UNKNOWN = "?"  # the engine's socket could not say: ask through the SDK instead


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def engine_image_id(ref: str, timeout: float = 30.0) -> str | None:
    """The local engine's id of image `ref` (None: no such image), asked straight over its
    Unix socket (`GET /images/REF/json`, what the SDK's `images.get` sends). `_UNKNOWN` when
    the engine is elsewhere (DOCKER_HOST other than unix://) or did not answer so: then the
    SDK asks, and says what is wrong. The Docker SDK takes ~0.15 s to import (it loads
    requests and paramiko), a no-op deploy's largest start-up cost, for this one question."""
    host = os.environ.get("DOCKER_HOST") or f"unix://{DEFAULT_SOCKET}"
    if not host.startswith("unix://"):
        return _UNKNOWN
    conn = _UnixHTTPConnection(host[len("unix://"):], timeout)
    try:
        conn.request("GET", f"/images/{quote(ref, safe='/:')}/json")
        response = conn.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException):
        return _UNKNOWN
    finally:
        conn.close()
    if response.status == 404:
        return None
    try:
        answer = json.loads(body) if response.status == 200 else None
    except ValueError:
        answer = None
    image_id = answer.get("Id") if isinstance(answer, dict) else None
    return image_id if isinstance(image_id, str) and image_id else _UNKNOWN


class LocalImages:
    """The local Docker engine's images, looked up once per run."""

    def __init__(self, client: Any | None = None):
        self._client = client
        self._ids: dict[str, str | None] = {}
        self._lock = threading.Lock()  # targets of several hosts are built at once

    def _docker(self) -> Any:
        if self._client is None:
            # Heavy, and only when an image is pushed: loaded here keeps start-up fast.
            import docker

            try:
                self._client = docker.from_env()
                self._client.ping()
            except Exception as exc:  # docker's errors do not share a useful base class
                self._client = None
                raise HostctlError(
                    "image_source is push, but no Docker engine answers on this machine "
                    f"({type(exc).__name__}); start one (dockerd) so images can be sent"
                ) from None
        return self._client

    def image_id(self, ref: str) -> str | None:
        with self._lock:
            return self._image_id(ref)

    def _image_id(self, ref: str) -> str | None:
        if ref not in self._ids and self._client is None:
            found = engine_image_id(ref)
            if found != _UNKNOWN:
                self._ids[ref] = found
        if ref not in self._ids:
            import docker.errors  # as above: loaded here keeps start-up fast

            try:
                self._ids[ref] = self._docker().images.get(ref).id
            except docker.errors.ImageNotFound:
                self._ids[ref] = None
        return self._ids[ref]

    def save(self, ref: str) -> Iterator[bytes]:
        """`docker save REF`: the archive names exactly this reference. (The SDK's
        `Image.save(named=True)` names the image's first tag instead, whichever it is, so
        the host would get another tag than the one its units run.)"""
        # `docker save NAME` without a tag would save every tag of NAME: ask for NAME:latest
        yield from self._docker().api.get_image(normalise_ref(ref), chunk_size=CHUNK)


def push_argv(docker: str, ref: str) -> list[str]:
    """Load the archive on stdin, then check that REF names an image on the host (docker
    says "No such image: REF" when the archive brought it under another name)."""
    return ["sh", "-c", '"$1" load --quiet && "$1" image inspect --format "{{.Id}}" "$2"',
            "sh", docker, ref]


def push(runner: Runner, docker: str, ref: str, chunks: Iterable[bytes],
         timeout: float = 1800) -> Result:
    """Stream an image to the host under REF; not ok when REF is not there afterwards."""
    return runner.stream_in(push_argv(docker, ref), chunks, timeout=timeout)


def pull(runner: Runner, docker: str, ref: str, timeout: float = 1800) -> Result:
    return runner.run([docker, "pull", "--quiet", ref], timeout=timeout)
