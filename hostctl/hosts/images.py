"""Getting images onto hosts: pull from a registry, or push from this machine without one.

`push` streams `docker save` from the local engine into `docker load` on the host, so a
multi-GB image never sits in memory, and it is only sent when the host lacks that image id.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import Any

from hostctl.errors import HostctlError
from hostctl.hosts.facts import normalise_ref
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
