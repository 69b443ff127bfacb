"""Write rendered files into a local folder for inspection, replacing it whole."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from typing import Any

from hostctl.render import RenderedFile, write_tree


def replace_tree(rendered: dict[str, list[RenderedFile]], out_dir: str) -> None:
    """Render into a fresh sibling folder, then swap it in: a reader never sees a mix of old
    and new files, and files of workloads that left the specs do not linger."""
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    fresh = tempfile.mkdtemp(prefix=".hostctl-render-", dir=parent)
    try:
        write_tree(rendered, fresh)
        os.chmod(fresh, 0o755)
        if os.path.isdir(out_dir):
            old = tempfile.mkdtemp(prefix=".hostctl-old-", dir=parent)
            os.rename(out_dir, os.path.join(old, "tree"))
            os.rename(fresh, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(fresh, out_dir)
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise


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
