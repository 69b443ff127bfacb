"""Kong's Admin API stand-in running on a sandbox host's loopback, reached like real Kong.

The stand-in (tests/rigs/kong_admin_standin.py) and the one hostctl module it needs are packed
into a zipapp with PyYAML's pure-Python code, copied to the host over SSH and run there as
a transient systemd unit bound to 127.0.0.1:PORT: hostctl can only reach it through its
SSH tunnel, exactly as it reaches Kong.
"""

from __future__ import annotations

import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
UNIT = "hostctl-test-kong-standin"


def build_standin_pyz(out: Path) -> Path:
    yaml_dir = Path(yaml.__file__).parent
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("__main__.py", "import runpy\nrunpy.run_module('kong_admin_standin', "
                                  "run_name='__main__')\n")
        z.write(Path(__file__).with_name("kong_admin_standin.py"), "kong_admin_standin.py")
        z.writestr("hostctl/__init__.py", "")
        z.writestr("hostctl/gateway/__init__.py", "")
        for module in ("kong_schema", "kong_typedefs", "pcre"):
            z.write(REPO / "hostctl" / "gateway" / f"{module}.py", f"hostctl/gateway/{module}.py")
        for path in sorted(yaml_dir.glob("*.py")):  # the pure-Python PyYAML
            z.write(path, f"yaml/{path.name}")
    return out


@contextmanager
def standin_on(site: object, host: str, port: int, tmp: Path, status_port: int = 8100
               ) -> Iterator[None]:
    """Run the stand-in on `host` (a tests.rigs.deploy_rig.Site host) at 127.0.0.1:`port`, with
    Kong's status listener at `status_port`."""
    pyz = build_standin_pyz(tmp / "standin.pyz")
    ssh = site.ssh  # type: ignore[attr-defined]
    hostobj = site.hosts[host]  # type: ignore[attr-defined]
    import subprocess

    subprocess.run(hostobj.ssh_argv("cat > /root/kong-standin.pyz"), input=pyz.read_bytes(),
                   check=True, timeout=60)
    ssh(host, f"systemctl stop {UNIT} >/dev/null 2>&1; systemctl reset-failed {UNIT} "
              f">/dev/null 2>&1; systemd-run --unit {UNIT} --collect "
              f"/usr/bin/python3 /root/kong-standin.pyz {port} {status_port}")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        probe = ssh(host, f"curl -s -o /dev/null -w '%{{http_code}}' "
                          f"http://127.0.0.1:{port}/status || true")
        if probe.strip() == "200":
            break
        time.sleep(0.3)
    else:
        raise AssertionError(f"the Kong stand-in did not answer on {host}:{port}")
    try:
        yield
    finally:
        ssh(host, f"systemctl stop {UNIT} >/dev/null 2>&1; true")
