"""Pushing images: the archive names exactly the reference asked for, and the host checks it
has that reference after loading (with the local Docker engine and a recording runner)."""

from __future__ import annotations

import io
import json
import tarfile

import docker

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
