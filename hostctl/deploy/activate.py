"""The script that makes a host's live files and units what a plan says (deploy and rollback
alike). A pure builder; it runs after hosts.scripts.PRELUDE, whose `step`, `unit_step` and
`put` it calls."""

from __future__ import annotations

from collections.abc import Mapping

from hostctl import layout as L
from hostctl.deploy.plan import HostPlan
from hostctl.hosts import scripts as S
from hostctl.hosts.scripts import q


def activate(plan: HostPlan, release: str | None, docker: str,
             project_of: Mapping[str, str]) -> str:
    """Make the live files equal release `release` as the plan says, then act on units.

    `release` None means "no release": the state before hostctl managed anything (a
    rollback of a first deploy), which has no files to install.
    Order matters: stop what leaves before its unit file goes; install files, enable,
    one daemon-reload; then restart and start.
    """
    r = S.release_dir(release or "none")
    d = q(docker)
    stops = [u.unit for u in plan.units if u.action == "stop"]
    restarts = [u.unit for u in plan.units if u.action == "restart"]
    starts = [u.unit for u in plan.units if u.action == "start"]
    lines: list[str] = []
    if stops:
        lines.append(f"step stop systemctl stop -- {S.words(stops)}")
        lines.append(f"systemctl disable -- {S.words(stops)} >/dev/null 2>&1")
        lines.append(f"systemctl reset-failed -- {S.words(stops)} >/dev/null 2>&1")
        for unit in stops:
            if unit.endswith(".service"):
                lines.append(f"{d} rm -f {q(unit[:-len('.service')])} >/dev/null 2>&1")
    for f in plan.files:
        if f.action == "write":
            owner = f" {q(f.owner)}" if f.owner else ""
            lines.append(f"step install put {q(r + '/files' + f.path)} {q(f.path)} "
                         f"{f.mode:04o}{owner}")
        else:
            lines.append(f"step remove rm -f {q(f.path)}")
    if plan.files:
        if plan.enable:
            # Before the reload, without one of its own: `systemctl enable` would reload
            # systemd a second time (~0.1 s of PID 1 on a host with a few dozen units), and
            # the reload after it makes systemd read the new enablement state too.
            lines.append(f"step enable systemctl enable --no-reload -- {S.words(plan.enable)}")
        lines.append("step reload systemctl daemon-reload")
    if release is None:
        lines.append(f"rm -f {L.CURRENT_LINK}")
    else:
        lines.append(f"ln -sfn {q('releases/' + release)} {L.CURRENT_LINK}.new && "
                     f"mv -T {L.CURRENT_LINK}.new {L.CURRENT_LINK}")
    for net in plan.networks:
        project = project_of.get(net, "")
        lines.append(
            f"{d} network inspect {q(net)} >/dev/null 2>&1 || step network {d} network create "
            f"--label io.hostctl.managed=true --label {q('io.hostctl.project=' + project)} "
            f"{q(net)}")
    if plan.enable and not plan.files:
        lines.append(f"step enable systemctl enable -- {S.words(plan.enable)}")
    if restarts:
        lines.append(f"unit_step restart {S.words(restarts)}")
    if starts:
        lines.append(f"unit_step start {S.words(starts)}")
    lines.append("echo '@@applied'")
    return "\n".join(lines) + "\n"
