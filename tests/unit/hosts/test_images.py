"""Pushing images: the archive names exactly the reference asked for, and the host checks it
has that reference after loading (with the local Docker engine and a recording runner)."""

from __future__ import annotations

import io
import json
import tarfile

import docker
import pytest

from hostctl.hosts.images import LocalImages, push, push_argv
from hostctl.runner.base import Result
from hostctl.runner.recording import RecordingRunner


def _repo_tags(chunks: object) -> list[list[str]]:
    data = b"".join(chunks)  # type: ignore[call-overload]
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        manifest = tar.extractfile("manifest.json")
        assert manifest is not None
        return [m.get("RepoTags") or [] for m in json.load(manifest)]


def test_save_names_the_reference_asked_for_not_the_first_tag(
        sandbox_engine: docker.DockerClient) -> None:
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, data in (("Dockerfile", b"FROM scratch\nCOPY f /f\n"), ("f", b"hostctl\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    image, _ = sandbox_engine.images.build(fileobj=context, custom_context=True,
                                           tag="hostctl-test-save:2", rm=True)
    try:
        image.tag("hostctl-test-save", "1")  # sorts first: named=True would save this one
        image.tag("hostctl-test-save", "latest")
        assert sandbox_engine.images.get(image.id).tags[0] == "hostctl-test-save:1"
        local = LocalImages(sandbox_engine)
        assert _repo_tags(local.save("hostctl-test-save:2")) == [["hostctl-test-save:2"]]
        # no tag means :latest, and only that: `docker save NAME` would send every tag
        assert _repo_tags(local.save("hostctl-test-save")) == [["hostctl-test-save:latest"]]
    finally:
        for tag in ("1", "2", "latest"):
            sandbox_engine.images.remove(f"hostctl-test-save:{tag}")


def test_push_loads_then_checks_the_reference_is_on_the_host() -> None:
    runner = RecordingRunner("h")
    argv = push_argv("/usr/bin/docker", "app:1.2")
    runner.respond(tuple(argv), Result(1, "", "Error: No such image: app:1.2"))
    res = push(runner, "/usr/bin/docker", "app:1.2", [b"x" * 10])
    assert not res.ok and res.stderr == "Error: No such image: app:1.2"
    assert argv == ["sh", "-c",
                    '"$1" load --quiet && "$1" image inspect --format "{{.Id}}" "$2"',
                    "sh", "/usr/bin/docker", "app:1.2"]
    assert [(c.command, c.stdin_len, c.streamed) for c in runner.calls] == [
        (tuple(argv), 10, True)]


def test_the_local_image_id_is_asked_over_the_engines_socket(
        sandbox_engine: docker.DockerClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the SDK's images.get answers (its id; None for no such image, with or without a
    tag), asked without the SDK; LocalImages gives the same."""
    from hostctl.hosts import images as I

    monkeypatch.delenv("DOCKER_HOST", raising=False)
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(b"FROM scratch\nLABEL x=1\n")
        tar.addfile(info, io.BytesIO(b"FROM scratch\nLABEL x=1\n"))
    context.seek(0)
    image, _ = sandbox_engine.images.build(fileobj=context, custom_context=True,
                                           tag="hostctl-test-id:3", rm=True)
    try:
        assert I.engine_image_id("hostctl-test-id:3") == image.id
        assert I.engine_image_id("hostctl-test-id:4") is None
        assert I.engine_image_id("hostctl-test-id") is None  # :latest, which it lacks
        assert LocalImages().image_id("hostctl-test-id:3") == image.id
    finally:
        sandbox_engine.images.remove("hostctl-test-id:3")


@pytest.mark.parametrize("docker_host", ["tcp://127.0.0.1:1", "unix:///nonexistent.sock"])
def test_an_engine_the_socket_cannot_ask_is_left_to_the_sdk(
        monkeypatch: pytest.MonkeyPatch, docker_host: str) -> None:
    """Elsewhere than a Unix socket, or no answer there: the SDK asks, and its failure is
    the message there always was."""
    from hostctl.errors import HostctlError
    from hostctl.hosts import images as I

    monkeypatch.setenv("DOCKER_HOST", docker_host)
    assert I.engine_image_id("app:1", timeout=2) == I._UNKNOWN
    with pytest.raises(HostctlError) as err:
        LocalImages().image_id("app:1")
    assert str(err.value).startswith(
        "image_source is push, but no Docker engine answers on this machine (")
