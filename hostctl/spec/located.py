"""The two helpers the cross-checks share with the sections' own checks, below both so that
neither imports the other for them: where in a spec a problem sits, and why an image cannot be
pushed."""

from __future__ import annotations

from hostctl.errors import Problem
from hostctl.spec import model as m
from hostctl.spec.schema import describe


def at(w: m.Workload, path: str, message: str) -> Problem:
    """A problem located at `path` inside workload `w` (or its nearest parent)."""
    probe = path
    while probe and probe not in w.lines:
        probe = probe.rpartition("/")[0]
    return Problem(w.file, w.lines.get(probe, w.line), path, message)


def digest_push_problem(image: str, source: str) -> str | None:
    """Why `image` cannot be pushed (`source` says where image_source push is set), or None.

    `docker load` restores an image's tags but never its repository digests, so a unit that
    runs `name@sha256:...` would find no such image on the host."""
    if "@" not in image:
        return None
    return (f"{describe(image)} names its image by digest, and image_source is push (in {source}): "
            "docker load brings no digests to the host, so the image could not be found "
            "there; push it by tag (name:tag, without @sha256:...), or set image_source: "
            "pull")
