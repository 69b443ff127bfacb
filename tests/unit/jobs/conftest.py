"""The host-side queue helper (hostctl-jobs.sh), run locally against a tmp state directory,
a stub systemctl, a stub docker (its images listed in $STUB/images, `REF ID` a line) and a
stub journalctl (the unit's lines in $STUB/journal)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from hostctl.jobs import hostside as H

STUB_DOCKER = r"""#!/bin/sh
echo "docker $*" >> "$STUB/calls"
[ "$1 $2 $3 $4" = "image inspect --format {{.Id}}" ] || exit 1
[ "$5" = -- ] && shift
while read -r ref id; do [ "$ref" = "$5" ] && { echo "$id"; exit 0; }; done < "$STUB/images"
echo "Error: No such image: $5" >&2
exit 1
"""

# A unit's journal: what $STUB/journal holds (the lines its processes printed, oldest first).
STUB_JOURNALCTL = r"""#!/bin/sh
echo "journalctl $*" >> "$STUB/calls"
cat "$STUB/journal" 2>/dev/null
exit 0
"""

STUB_SYSTEMCTL = r"""#!/bin/sh
echo "systemctl $*" >> "$STUB/calls"
case $1 in
  is-active) shift; [ "$1" = --quiet ] && shift
    for u in "$@"; do cat "$STUB/active/$u" 2>/dev/null || echo inactive; done;;
  start) shift; [ "$1" = --no-block ] && shift
    for u in "$@"; do echo activating > "$STUB/active/$u"; done;;
esac
exit 0
"""


@pytest.fixture()
def helper(tmp_path: Path) -> object:
    if shutil.which("flock") is None:
        pytest.skip("flock (util-linux) is not installed")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("systemctl", STUB_SYSTEMCTL), ("systemd-run", "#!/bin/sh\n"
                       'echo "systemd-run $*" >> "$STUB/calls"\n'),
                       ("nproc", "#!/bin/sh\necho 2\n"), ("docker", STUB_DOCKER),
                       ("journalctl", STUB_JOURNALCTL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    state = tmp_path / "state"
    (state / "gpu").mkdir(parents=True)
    (state / "gpu" / "devices").write_text("0\n")
    (state / "gpu" / "mode").write_text("env\n")
    (tmp_path / "stub" / "active").mkdir(parents=True)
    (tmp_path / "stub" / "images").write_text("")
    script = Path(H.__file__).with_name("hostctl-jobs.sh")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "HOSTCTL_STATE": str(state),
           "STUB": str(tmp_path / "stub")}

    class Helper:
        root = state

        def __call__(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(["sh", str(script), *args], capture_output=True, text=True,
                                  env={**env, **extra}, timeout=30)

        stub = tmp_path / "stub"

        def prepare(self, run_id: str, need: int, cpus: int = 500, job: str = "train",
                    **fields: object) -> None:
            d = state / "runs" / f".new-{run_id}"
            d.mkdir(parents=True)
            for k, v in {"job": job, "unit": f"hostctl-job-{job}@{run_id}.service",
                         "need": need, "cpus": cpus, "attempts": 2, "attempt": 1,
                         **fields}.items():
                (d / k).write_text(f"{v}\n")

        def field(self, run_id: str, name: str) -> str:
            p = state / "runs" / run_id / name
            return p.read_text().strip() if p.exists() else ""

        def vanish(self, run_id: str) -> None:
            """Its unit is gone (what a crash leaves), as the stub systemctl will say."""
            (tmp_path / "stub" / "active" / f"hostctl-job-train@{run_id}.service").write_text(
                "inactive\n")

        def calls(self) -> list[str]:
            p = tmp_path / "stub" / "calls"
            return p.read_text().splitlines() if p.exists() else []

    return Helper()
