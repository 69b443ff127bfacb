"""Import paramiko without the invoke package it loads for `Match exec` (start-up speed).

`paramiko.config` imports invoke at once, only to run the commands of an ssh_config's
`Match exec` lines; invoke in turn loads unittest.mock and asyncio: about a third of
paramiko's import time, on the path of every command that connects. hostctl never reads an
ssh_config, so paramiko is imported here with invoke held back, and `paramiko.config` gets
a stand-in that imports invoke when a `Match exec` is first evaluated: paramiko behaves as
before for anyone who does read an ssh_config in this process.

Likewise paramiko's `__init__` asks importlib.metadata for its own version (the client's
SSH banner names it): importing importlib.metadata (it loads the email package, csv and
zipfile) costs ~20 ms. While paramiko is imported, `importlib.metadata` is a stand-in that
reads the version from paramiko's own installed METADATA file, and hands anything else (or
anyone else who imports it meanwhile, from another thread) to the real module.

Imported by `hostctl.runner.ssh` before paramiko itself.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

_METADATA = "importlib.metadata"


class _InvokeOnUse:
    """`paramiko.config.invoke` until first used: then the real module."""

    def __getattr__(self, name: str) -> Any:
        return getattr(importlib.import_module("invoke"), name)


class _MetadataForParamiko(types.ModuleType):
    """`importlib.metadata` while paramiko is imported: `version("paramiko")` from paramiko's
    own METADATA; any other name or attribute from the real module."""

    def __init__(self, paramiko_version: str) -> None:
        super().__init__(_METADATA)
        self._paramiko_version = paramiko_version

    def version(self, name: str) -> str:
        if name == "paramiko":
            return self._paramiko_version
        return str(self._real().version(name))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real(), name)

    def _real(self) -> Any:
        if sys.modules.get(_METADATA) is self:
            del sys.modules[_METADATA]
        return importlib.import_module(_METADATA)


def _installed_version() -> str | None:
    """paramiko's version as its installed METADATA says; None when that is not one clear
    file next to the package (then importlib.metadata is asked, as paramiko does)."""
    spec = importlib.util.find_spec("paramiko")  # as the import will find it
    if spec is None or not spec.origin:
        return None
    found = list(Path(spec.origin).parent.parent.glob("paramiko-*.dist-info/METADATA"))
    if len(found) != 1:
        return None
    try:
        with open(found[0], encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("Version:"):
                    return line.split(":", 1)[1].strip() or None
                if not line.strip():  # the headers end here
                    break
    except OSError:
        pass
    return None


def _import() -> None:
    if "paramiko" in sys.modules or "invoke" in sys.modules:
        return
    version = _installed_version() if _METADATA not in sys.modules else None
    stand_in = _MetadataForParamiko(version) if version else None
    sys.modules["invoke"] = None  # type: ignore[assignment]  # an ImportError for paramiko
    if stand_in is not None:
        sys.modules[_METADATA] = stand_in
    try:
        import paramiko.config  # start-up: the point of this module (see its docstring)
    finally:
        if sys.modules.get("invoke", 0) is None:
            del sys.modules["invoke"]
        if stand_in is not None and sys.modules.get(_METADATA) is stand_in:
            del sys.modules[_METADATA]
    # Only when paramiko is as described above (another version may not import invoke
    # this way: it then stays as it is).
    if getattr(paramiko.config, "invoke", False) is None:
        paramiko.config.invoke = _InvokeOnUse()
        paramiko.config.invoke_import_error = None


_import()
