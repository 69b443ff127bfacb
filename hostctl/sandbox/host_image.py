"""Build (once) the sandbox host image: Debian with systemd as PID 1, sshd and its own dockerd.

No registry is reachable, so the image is made from scratch: debootstrap a root filesystem
from the machine's own Debian mirror, apply the recipe's tweaks, `docker import` it. The tag
carries the recipe hash, so the ~1-2 minute build happens once per recipe and is reused after.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import docker
from docker.errors import ImageNotFound

from hostctl.sandbox import host_recipe
from hostctl.sandbox.errors import SandboxError
from hostctl.sandbox.locking import file_lock
from hostctl.sandbox.progress import Progress, print_progress, run_logged

BUILD_TIMEOUT = 900.0
# On the real disk, not a tmpfs: the root filesystem is ~650 MB and holds device nodes.
WORK_PARENT = Path("/var/tmp")


def ensure_host_image(
    client: docker.DockerClient,
    *,
    mirror: str | None = None,
    progress: Progress = print_progress,
) -> str:
    """Return the host image's tag, building it first when no image of this recipe exists."""
    ref = host_recipe.image_ref()
    if image_exists(client, ref):
        return ref
    # Concurrent callers queue here; whoever comes second finds the image already tagged.
    with file_lock("host-image"):
        if image_exists(client, ref):
            return ref
        build_host_image(client, ref, mirror=mirror or host_recipe.find_mirror(), progress=progress)
    return ref


def image_exists(client: docker.DockerClient, ref: str) -> bool:
    """True when the local engine has an image tagged `ref`."""
    try:
        client.images.get(ref)
    except ImageNotFound:
        return False
    return True


def build_host_image(
    client: docker.DockerClient, ref: str, *, mirror: str, progress: Progress
) -> None:
    """Build the image and tag it `ref` in one final step, so no half-built image carries it."""
    _check_build_tools()
    started = time.monotonic()
    progress(f"building {ref} from {mirror} (takes 1-2 minutes, once per recipe)")
    workdir = Path(tempfile.mkdtemp(prefix="hostctl-sandbox-host-", dir=_work_parent()))
    try:
        rootfs, log = workdir / "rootfs", workdir / "build.log"
        progress("  debootstrap: laying down the root filesystem")
        argv = host_recipe.debootstrap_argv(rootfs, mirror)
        run_logged(argv, log, progress=progress, timeout=BUILD_TIMEOUT)
        progress("  applying the recipe's tweaks")
        shutil.copytree(host_recipe.RECIPE_DIR / "rootfs", rootfs, dirs_exist_ok=True)
        run_logged(host_recipe.customize_argv(rootfs), log, progress=progress, timeout=120)
        progress("  packing and importing into the Docker engine")
        tarball = workdir / "rootfs.tar"
        run_logged(host_recipe.tar_argv(rootfs, tarball), log, progress=progress, timeout=600)
        repository, _, hash_ = ref.rpartition(":")
        image_id = _import(client, tarball, hash_)
        client.api.tag(image_id, repository, tag=hash_)
    finally:
        remove_workdir(workdir)
    progress(f"built {ref} in {time.monotonic() - started:.0f}s")


def _import(client: docker.DockerClient, tarball: Path, hash_: str) -> str:
    changes = host_recipe.import_changes(hash_)
    with tarball.open("rb") as data:
        # Imported untagged; the caller tags it only once the import has fully succeeded.
        answer = client.api.import_image_from_data(data, changes=changes)
    return parse_import_answer(answer)


def parse_import_answer(answer: str) -> str:
    """The image id from the engine's JSON-lines answer to an import."""
    for line in str(answer).splitlines():
        message = json.loads(line) if line.strip() else {}
        if "error" in message:
            raise SandboxError(f"docker import failed: {message['error']}")
        status = str(message.get("status", ""))
        if status.startswith("sha256:"):
            return status
    raise SandboxError(f"docker import gave no image id: {answer!r}")


def _check_build_tools() -> None:
    if os.geteuid() != 0:
        raise SandboxError("building the sandbox host image needs root (debootstrap, chroot)")
    missing = [tool for tool in ("debootstrap", "tar", "chroot") if shutil.which(tool) is None]
    if missing:
        raise SandboxError(
            f"missing {', '.join(missing)}: run scripts/ci-setup.sh (apt-get install debootstrap)"
        )


def _work_parent() -> Path:
    return WORK_PARENT if WORK_PARENT.is_dir() else Path(tempfile.gettempdir())


def remove_workdir(workdir: Path) -> None:
    """Delete a build directory, first unmounting what an interrupted debootstrap left mounted.

    Deleting through a still-mounted /proc or /sys would reach into the live system, so a
    directory that cannot be fully unmounted is left in place instead.
    """
    for mountpoint in mounts_under(workdir):
        subprocess.run(["umount", "-l", mountpoint], check=False, capture_output=True)
    if mounts_under(workdir):
        raise SandboxError(f"could not unmount everything under {workdir}; remove it by hand")
    shutil.rmtree(workdir, ignore_errors=True)


def mounts_under(directory: Path, mounts_file: Path = Path("/proc/self/mounts")) -> list[str]:
    """Mount points inside `directory`, deepest first."""
    prefix = str(directory.resolve()).rstrip("/") + "/"
    points = []
    for line in mounts_file.read_text().splitlines():
        fields = line.split()
        if len(fields) > 1:
            point = fields[1].replace("\\040", " ")
            if point.startswith(prefix):
                points.append(point)
    return sorted(points, key=len, reverse=True)
