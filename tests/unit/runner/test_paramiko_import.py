"""hostctl.runner.paramiko_import: paramiko without invoke at start-up, and paramiko (and
Fabric) working as before afterwards."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

CHECK = """
import sys
import hostctl.runner.ssh
assert "invoke" not in sys.modules, "invoke was imported"
assert "fabric" not in sys.modules, "fabric was imported"
import paramiko
config = paramiko.SSHConfig.from_text('Match exec "true"\\n  User bob\\nHost *\\n  Port 2\\n')
assert config.lookup("h")["user"] == "bob"  # the stand-in ran invoke for the Match exec
assert "invoke" in sys.modules
from fabric.tunnels import Tunnel  # what forward_port imports
print("ok")
"""


def passes_in_a_fresh_interpreter(script: str) -> None:
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=REPO, timeout=60)
    assert (res.returncode, res.stdout, res.stderr) == (0, "ok\n", "")


def test_the_ssh_runner_imports_paramiko_without_invoke_and_match_exec_still_works() -> None:
    passes_in_a_fresh_interpreter(CHECK)


METADATA_CHECK = """
import sys
import hostctl.runner.ssh
assert "importlib.metadata" not in sys.modules, "importlib.metadata was imported"
import paramiko
from importlib import metadata
assert type(metadata).__name__ == "module", metadata  # the real one, not the stand-in
assert paramiko.__version__ == metadata.version("paramiko"), paramiko.__version__
print("ok")
"""


def test_paramiko_is_imported_without_importlib_metadata_and_knows_its_version() -> None:
    """paramiko's __version__ (its SSH banner says it) read from its own METADATA is what
    importlib.metadata says; importlib.metadata itself is left for whoever needs it."""
    passes_in_a_fresh_interpreter(METADATA_CHECK)


def test_the_metadata_stand_in_hands_other_names_to_the_real_module() -> None:
    """Another thread importing importlib.metadata while paramiko is imported gets the
    stand-in: every other name it asks for is the real module's."""
    from hostctl.runner.paramiko_import import _MetadataForParamiko

    stand_in = _MetadataForParamiko("9.9")
    assert stand_in.version("paramiko") == "9.9"
    assert stand_in.version("pyyaml") == metadata.version("pyyaml")
    assert stand_in.PackageNotFoundError is metadata.PackageNotFoundError
