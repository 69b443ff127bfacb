"""Import paramiko without the invoke package it loads for `Match exec` (start-up speed).

`paramiko.config` imports invoke at once, only to run the commands of an ssh_config's
`Match exec` lines; invoke in turn loads unittest.mock and asyncio: about a third of
paramiko's import time, on the path of every command that connects. hostctl never reads an
ssh_config, so paramiko is imported here with invoke held back, and `paramiko.config` gets
a stand-in that imports invoke when a `Match exec` is first evaluated: paramiko behaves as
before for anyone who does read an ssh_config in this process.

Imported by `hostctl.runner.ssh` before paramiko itself.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any


class _InvokeOnUse:
    """`paramiko.config.invoke` until first used: then the real module."""

    def __getattr__(self, name: str) -> Any:
        return getattr(importlib.import_module("invoke"), name)


def _import() -> None:
    if "paramiko" in sys.modules or "invoke" in sys.modules:
        return
    sys.modules["invoke"] = None  # type: ignore[assignment]  # an ImportError for paramiko
    try:
        import paramiko.config  # start-up: the point of this module (see its docstring)
    finally:
        if sys.modules.get("invoke", 0) is None:
            del sys.modules["invoke"]
    # Only when paramiko is as described above (another version may not import invoke
    # this way: it then stays as it is).
    if getattr(paramiko.config, "invoke", False) is None:
        paramiko.config.invoke = _InvokeOnUse()
        paramiko.config.invoke_import_error = None


_import()
