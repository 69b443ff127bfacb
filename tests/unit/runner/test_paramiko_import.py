"""hostctl.runner.paramiko_import: paramiko without invoke at start-up, and paramiko (and
Fabric) working as before afterwards."""

from __future__ import annotations

import subprocess
import sys
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


def test_the_ssh_runner_imports_paramiko_without_invoke_and_match_exec_still_works() -> None:
    res = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True,
                         cwd=REPO, timeout=60)
    assert (res.returncode, res.stdout, res.stderr) == (0, "ok\n", "")
