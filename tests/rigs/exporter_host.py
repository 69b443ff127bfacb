"""A host as the metrics exporter sees it, without one: `docker inspect` items with
hostctl's labels, and a fake Docker/systemctl (FakeHost) that answers with them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any


def inspect_item(cid: str, name: str, labels: dict[str, str], *, running: bool = True,
                 pid: int = 0, started: str = "2023-11-14T22:13:20.123456789Z",
                 health: str | None = None, gpus: int | None = None,
                 ip: str = "10.214.0.5", device_ids: list[str] | None = None,
                 env: list[str] | None = None) -> dict[str, Any]:
    state: dict[str, Any] = {"Status": "running" if running else "exited", "Running": running,
                             "Pid": pid if running else 0, "StartedAt": started}
    if health:
        state["Health"] = {"Status": health, "FailingStreak": 0, "Log": []}
    requests = None if gpus is None else [
        {"Driver": "", "Count": 0 if device_ids else gpus, "DeviceIDs": device_ids,
         "Capabilities": [["gpu"]], "Options": {}}]
    return {
        "Id": cid, "Name": f"/{name}", "State": state,
        "Config": {"Image": labels.pop("image", "app:1.0"),
                   "Labels": {f"io.hostctl.{k}": v for k, v in labels.items()},
                   **({"Env": env} if env is not None else {})},
        "HostConfig": {"DeviceRequests": requests},
        "NetworkSettings": {"Networks": {"hostctl-shop": {"IPAddress": ip}}},
    }


def labels(workload: str, project: str, kind: str = "service", **extra: str) -> dict[str, str]:
    return {"managed": "true", "workload": workload, "project": project, "kind": kind,
            "spec-hash": "0123456789ab", **extra}


class FakeHost:
    """Docker and systemctl answers, changed by the test between samples."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.docker_up = True
        self.units = ""
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> tuple[int, str]:
        self.calls.append(list(argv))
        if argv[0] == "systemctl":
            return 0, self.units
        if not self.docker_up:
            return 1, ""
        if argv[1] == "ps":
            return 0, "".join(i["Id"] + "\n" for i in self.items)
        return 0, json.dumps([i for i in self.items if i["Id"] in argv])
