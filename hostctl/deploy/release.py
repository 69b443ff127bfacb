"""The manifests of a deploy's releases: the one it stages, and the one it returns to if
the apply fails.

A release's manifest lists every file it leaves live on the host with its hash and mode, so
a rollback (automatic or by hand) can bring exactly those files back. Pure: everything here
is worked out from facts already read; the scripts that stage releases are in remote.scripts.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from hostctl import layout as L
from hostctl.deploy.plan import HostPlan, _live_workloads
from hostctl.deploy.target import HostTarget
from hostctl.hosts import scripts as S
from hostctl.hosts.facts import HostFacts
from hostctl.render import docker_cmd as d
from hostctl.spec import model as m


def rollback_point(facts: HostFacts) -> tuple[dict[str, Any], str]:
    """The release to return to on failure, and a script that snapshots the live files
    first when no release matches them (first deploy, hand edits)."""
    current = facts.manifest
    live_matches = current and {f["path"]: f["sha256"] for f in current.get("files", [])
                                } == facts.files
    if live_matches:
        return current, ""
    if not facts.files:
        return {}, ""
    # Named a second earlier, so it sorts before the release it precedes.
    snap = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() - 1)) + "-base"
    owners = _live_workloads(facts.files, facts.units)
    manifest = {
        "release": snap, "note": "live files before hostctl's first managed release",
        "files": [{"path": p, "sha256": s, "mode": L.live_mode(p),
                   "workload": owners.get(p, ""), "secret": L.is_secret_path(p)}
                  for p, s in sorted(facts.files.items())],
    }
    return manifest, S.stage_release(snap, {}, [], manifest)


def release_manifest(release: str, facts: HostFacts, target: HostTarget, plan: HostPlan,
                     previous: Mapping[str, Any], *, site: m.Site, by: str, run_id: str,
                     revision: str | None) -> dict[str, Any]:
    """The manifest of `release`: every file live once `plan` is applied, and who made it
    from which specs (`hostctl releases` shows them)."""
    written = {f.path for f in plan.files if f.action == "write"}
    removed = {f.path for f in plan.files if f.action == "remove"}
    known = {f["path"]: f for f in previous.get("files", [])}
    owners = _live_workloads(facts.files, facts.units)
    files = []
    for path in sorted((set(facts.files) - removed) | written):
        t = target.target.get(path)
        # A file as the specs want it is described by the target; one the plan leaves as
        # it was keeps the entry of the release it came from; any other live file (written
        # by `hostctl run`, or by hand) is recorded as found, so a rollback keeps it too.
        if t is not None and (path in written or facts.files.get(path) == t.sha256):
            files.append({"path": path, "sha256": t.sha256, "mode": f"{t.mode:04o}",
                          "workload": t.workload, "secret": t.secret, "owner": t.owner,
                          "restarts": t.restarts})
        elif path in known:
            files.append(known[path])
        else:
            files.append({"path": path, "sha256": facts.files[path],
                          "mode": L.live_mode(path),
                          "workload": owners.get(path, ""),
                          "secret": L.is_secret_path(path)})
    return {
        "release": release, "previous": previous.get("release"),
        "created": int(time.time()), "by": by, "run": run_id,
        "revision": revision,
        "workloads": {w.name: d.spec_hash(w) for w in site.workloads},
        "files": files,
    }
