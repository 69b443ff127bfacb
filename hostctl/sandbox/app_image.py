"""Build the worked example's demo app image (inventories/images/demo-app) on the local engine.

The image is busybox alone, copied from this machine's Debian busybox-static, so it builds
without any registry. A build is reused while the recipe, the busybox binary and the version
are unchanged (their hash is a label on the image).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
from pathlib import Path

import docker
from docker.errors import BuildError, ImageNotFound

from hostctl.sandbox.engine import ensure_engine
from hostctl.sandbox.errors import SandboxError
from hostctl.sandbox.locking import file_lock

RECIPE_DIR = Path(__file__).resolve().parents[2] / "inventories" / "images" / "demo-app"
BUSYBOX = Path("/bin/busybox")
RECIPE_LABEL = "io.hostctl.demo-app.recipe"
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def build(
    version: str,
    tag: str = "hostctl-demo-app",
    *,
    client: docker.DockerClient | None = None,
    recipe_dir: Path = RECIPE_DIR,
    busybox: Path = BUSYBOX,
) -> str:
    """Build `<tag>:<version>` (reusing an identical earlier build) and return its image id."""
    if not _TAG.match(version):
        raise ValueError(f"demo app version {version!r} is not a valid image tag")
    if not busybox.is_file():
        raise SandboxError(f"{busybox} missing: apt-get install busybox-static")
    client = client or ensure_engine()
    ref = f"{tag}:{version}"
    hash_ = recipe_hash(version, recipe_dir, busybox)
    with file_lock("demo-app"):
        existing = _labelled_id(client, ref, hash_)
        if existing is not None:
            return existing
        _build(client, ref, version, hash_, recipe_dir, busybox)
    return str(client.images.get(ref).id)


def recipe_hash(version: str, recipe_dir: Path = RECIPE_DIR, busybox: Path = BUSYBOX) -> str:
    """12 hex digits over the recipe files, the busybox binary and the version."""
    digest = hashlib.sha256(f"{version}\0".encode())
    for path in [*sorted(p for p in recipe_dir.iterdir() if p.is_file()), busybox]:
        digest.update(f"{path.name}\0".encode() + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def _labelled_id(client: docker.DockerClient, ref: str, hash_: str) -> str | None:
    try:
        image = client.images.get(ref)
    except ImageNotFound:
        return None
    return str(image.id) if image.labels.get(RECIPE_LABEL) == hash_ else None


def _build(
    client: docker.DockerClient,
    ref: str,
    version: str,
    hash_: str,
    recipe_dir: Path,
    busybox: Path,
) -> None:
    with tempfile.TemporaryDirectory(prefix="hostctl-demo-app-") as context:
        shutil.copytree(recipe_dir, context, dirs_exist_ok=True)
        shutil.copy2(busybox, Path(context) / "busybox")
        try:
            client.images.build(
                path=context,
                tag=ref,
                buildargs={"APP_VERSION": version},
                labels={RECIPE_LABEL: hash_},
                rm=True,
                forcerm=True,
            )
        except BuildError as error:
            log = "".join(str(line.get("stream", "")) for line in error.build_log)
            raise SandboxError(
                f"building {ref} failed: {error.msg}\n{log[-2000:]}\n"
                "(the build needs a statically linked busybox: Debian's busybox-static)"
            ) from error
