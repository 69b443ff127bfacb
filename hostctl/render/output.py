"""Write rendered files into a local folder for inspection, replacing it whole.

`render` and `k8s render` share one rule for their output folder: it is replaced whole (so
files of workloads that left the specs do not linger), only if it is missing, empty, or marked
as written by that command (a marker file in it), and never when it holds the folder hostctl
runs in. Anything else is the operator's folder (`-o specs`) and is refused untouched.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from hostctl.errors import HostctlError

if TYPE_CHECKING:
    from hostctl.render.site import RenderedFile

RENDER_MARKER = "hostctl-render.txt"
_RENDER_MARKER_TEXT = ("Written by `hostctl render`, which replaces this folder whole each "
                       "time: change the inventory and specs, not these files.\n")


def replace_tree(rendered: dict[str, list[RenderedFile]], out_dir: str) -> None:
    """`render`'s folder: a folder per host, and the marker."""
    def write(folder: str) -> None:
        write_files(folder, ((host, f.path.lstrip("/"), f.shown(), f.mode)
                             for host, files in rendered.items() for f in files))
        with open(os.path.join(folder, RENDER_MARKER), "w", encoding="utf-8") as fh:
            fh.write(_RENDER_MARKER_TEXT)

    replace_folder(out_dir, write, RENDER_MARKER, "hostctl render")


def write_files(folder: str, files: Iterable[tuple[str, str, bytes, int]]) -> None:
    """Write each (subfolder, relative path, bytes, mode) under `folder`, with exactly that
    mode. Secret values are never written locally: callers pass what may be shown."""
    for sub, rel, data, mode in files:
        target = os.path.join(folder, sub, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        tmp = target + ".tmp"
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, target)


def replace_folder(out_dir: str, write: Callable[[str], None], marker: str, command: str
                   ) -> None:
    """Have `write` fill a fresh sibling folder, which must then hold `marker`, and swap it
    in for `out_dir`: a reader never sees a mix of old and new files. Refuses (HostctlError,
    nothing changed) a folder `command` did not write; see the module's docstring."""
    target = claim_folder(out_dir, marker, command)
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    fresh = tempfile.mkdtemp(prefix=".hostctl-render-", dir=parent)
    old = None
    try:
        write(fresh)
        if not os.path.isfile(os.path.join(fresh, marker)):
            raise AssertionError(f"{command} wrote no {marker}")
        os.chmod(fresh, 0o755)
        if os.path.isdir(target):
            old = tempfile.mkdtemp(prefix=".hostctl-old-", dir=parent)
            os.rename(target, os.path.join(old, "tree"))
            try:
                os.rename(fresh, target)
            except BaseException:
                os.rename(os.path.join(old, "tree"), target)
                raise
        else:
            os.rename(fresh, target)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def claim_folder(out_dir: str, marker: str, command: str) -> str:
    """The real path of `out_dir` if `command` may replace it; HostctlError if not."""
    target = os.path.realpath(out_dir)
    here = os.path.realpath(os.getcwd())
    if target == os.path.dirname(target) or here == target or here.startswith(target + os.sep):
        raise HostctlError(f"{out_dir}: {command} replaces its output folder whole, and this "
                           "one holds the current folder; choose a folder such as ./out")
    if os.path.lexists(target) and not os.path.isdir(target):
        raise HostctlError(f"{out_dir} exists and is not a folder; choose another folder")
    if os.path.isdir(target) and os.listdir(target) and not os.path.isfile(
            os.path.join(target, marker)):
        raise HostctlError(f"{out_dir} is not empty and was not written by `{command}`; "
                           "choose another folder (or empty this one)")
    return target


def rendered_listing(rendered: dict[str, list[RenderedFile]]) -> dict[str, list[dict[str, Any]]]:
    """Per host: path, mode, sha256 of what was written (the redacted form for secrets)."""
    return {
        host: [
            {"path": f.path, "mode": f"{f.mode:04o}", "secret": f.secret,
             "sha256": hashlib.sha256(f.shown()).hexdigest()}
            for f in files
        ]
        for host, files in rendered.items()
    }
