"""Show a plan: a readable diff per host, or JSON for scripts. Never a secret value."""

from __future__ import annotations

import difflib
from typing import Any

from hostctl.deploy.plan import HostPlan, Plan
from hostctl.hosts.facts import HostFacts
from hostctl.render.site import RenderedFile


def plan_json(plan: Plan) -> dict[str, Any]:
    return {
        "changed": plan.changed,
        "hosts": {
            name: {
                "error": h.error,
                "changed": h.changed,
                "counts": h.counts(),
                "files": [{"path": f.path, "action": f.action, "mode": f"{f.mode:04o}",
                           "secret": f.secret, "workload": f.workload} for f in h.files],
                "units": [{"unit": u.unit, "action": u.action, "reason": u.reason}
                          for u in h.units],
                "images": [{"ref": i.ref, "method": i.method, "reason": i.reason}
                           for i in h.images],
                "networks": list(h.networks),
                "enable": list(h.enable),
                "notes": list(h.notes),
            }
            for name, h in plan.hosts.items()
        },
    }


def plan_text(plan: Plan, facts: dict[str, HostFacts],
              files: dict[str, dict[str, RenderedFile]], diffs: bool = True) -> list[str]:
    out: list[str] = []
    for name, h in plan.hosts.items():
        out += host_text(h, facts.get(name), files.get(name, {}), diffs)
    return out


def host_text(h: HostPlan, facts: HostFacts | None, files: dict[str, RenderedFile],
              diffs: bool) -> list[str]:
    if h.error:
        return [f"{h.host}: ERROR {h.error.removeprefix(h.host + ': ')}"]
    if not h.changed:
        return [f"{h.host}: no changes ({h.unchanged} file(s) up to date)",
                *(f"  note   {note}" for note in h.notes)]
    c = h.counts()
    out = [f"{h.host}: {c['write']} file(s) to write, {c['remove']} to remove, "
           f"{c['start']} unit(s) to start, {c['restart']} to restart, {c['stop']} to stop, "
           f"{c['images']} image(s) to fetch"]
    for img in h.images:
        out.append(f"  image  {img.method} {img.ref} ({img.reason})")
    for net in h.networks:
        out.append(f"  network create {net}")
    for f in h.files:
        sign = "+" if f.action == "write" and f.old_sha256 is None else (
            "~" if f.action == "write" else "-")
        out.append(f"  {sign} {f.path}" + (" (secret: content not shown)" if f.secret else ""))
        if diffs and f.action == "write" and not f.secret and f.old_sha256 is not None:
            old = (facts.contents.get(f.path, b"") if facts else b"").decode(errors="replace")
            new = files[f.path].content.decode() if f.path in files else ""
            for line in difflib.unified_diff(old.splitlines(), new.splitlines(), "live",
                                             "new", n=0, lineterm=""):
                if not line.startswith(("---", "+++")):
                    out.append("      " + line)
    for u in h.units:
        out.append(f"  unit   {u.action} {u.unit} ({u.reason})")
    for unit in h.enable:
        out.append(f"  unit   enable {unit}")
    for note in h.notes:
        out.append(f"  note   {note}")
    return out
