"""Getting images onto hosts: pull from a registry, or push from this machine without one.

`push` streams `docker save` from the local engine into `docker load` on the host, so a
multi-GB image never sits in memory, and it is only sent when the host lacks that image id.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import Any

from hostctl.errors import HostctlError
from hostctl.runner.base import Result, Runner

CHUNK = 1 << 20


class LocalImages:
    """The local Docker engine's images, looked up once per run."""

    def __init__(self, client: Any | None = None):
        self._client = client
        self._ids: dict[str, str | None] = {}
        self._lock = threading.Lock()  # targets of several hosts are built at once

    def _docker(self) -> Any:
        if self._client is None:
            import docker  # heavy: only when an image is pushed

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
        if ref not in self._ids:
            import docker.errors

            try:
                self._ids[ref] = self._docker().images.get(ref).id
            except docker.errors.ImageNotFound:
                self._ids[ref] = None
        return self._ids[ref]

    def save(self, ref: str) -> Iterator[bytes]:
        image = self._docker().images.get(ref)
        yield from image.save(chunk_size=CHUNK, named=True)


def push(runner: Runner, docker: str, chunks: Iterable[bytes], timeout: float = 1800) -> Result:
    return runner.stream_in([docker, "load", "--quiet"], chunks, timeout=timeout)


def pull(runner: Runner, docker: str, ref: str, timeout: float = 1800) -> Result:
    return runner.run([docker, "pull", "--quiet", ref], timeout=timeout)
