"""One rule for "is this service healthy", shared by `hostctl status` and the metrics exporter.

Docker's verdict counts when it has one (healthy, unhealthy). While it has none (the
container has no HEALTHCHECK: "-"), or its check is still "starting" (an image's check runs
on its own interval, so right after a deploy Docker has not checked yet), hostctl's own
check of the unit's current run counts: the health probe's last check (hostctl.render.probe, its
HEALTH_DIR/<unit>.state) or the deploy's health gate (HEALTH_DIR/<unit>.verified, written
when the gate saw the unit healthy), whichever came last, and only when made after the unit
last started: a verdict on an earlier run says nothing about this one.

The verdict is one word: healthy, unhealthy, starting, or "-" (no check said anything:
running is all the spec asks, or nobody checked yet). healthy and "-" count as healthy
(`counts_as_healthy`).

Standard library only: the exporter bundle (observability/exporter_bundle.py) ships this file
to hosts, where the exporter reads the same files with `read_records`.
"""

from __future__ import annotations

import calendar
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

NONE = "-"  # no verdict
STATE_SUFFIX = ".state"  # the probe's record: key=value lines
VERIFIED_SUFFIX = ".verified"  # the deploy's health gate: epoch seconds
HEALTHY = ("healthy", NONE)


@dataclass(frozen=True)
class Records:
    """hostctl's records of one unit's health: the probe's (health, last_check) and when
    the deploy's health gate last saw it healthy."""

    probe_health: str = ""  # healthy | unhealthy | starting | inactive | restarting | ""
    probe_check: int | None = None  # epoch seconds of the probe's last check
    verified: int | None = None  # epoch seconds

    @staticmethod
    def of(probe: Mapping[str, str] | None, verified: int | None) -> Records:
        probe = probe or {}
        check = probe.get("last_check", "")
        return Records(probe.get("health", ""), int(check) if check.isdigit() and
                       int(check) else None, verified)


def hostctl_verdict(records: Records, started: int | None) -> str | None:
    """hostctl's latest verdict on the run that started at `started` (epoch seconds; None:
    unknown, every record counts); None when nothing checked this run.

    A probe record without last_check (written before it existed) has no time: it counts
    unless something newer is known. The probe's "starting" (a failed check inside the
    start period) counts only with its time."""
    found: list[tuple[int, int, str]] = []  # (when, rank, verdict): the gate wins a tie
    health, when = records.probe_health, records.probe_check
    if health in ("healthy", "unhealthy"):
        found.append((when or 0, 0, health))
    elif health == "starting" and when:
        found.append((when, 0, health))
    if records.verified is not None:
        found.append((records.verified, 1, "healthy"))
    current = [f for f in found if started is None or f[0] == 0 or f[0] >= started]
    return max(current)[2] if current else None


def verdict(docker: str | None, records: Records, started: int | None) -> str:
    """The one verdict: Docker's (healthy, unhealthy, starting; None or "-" without a
    check), unless it has none yet and hostctl checked this run."""
    docker = docker if docker in ("healthy", "unhealthy", "starting") else NONE
    if docker in (NONE, "starting"):
        return hostctl_verdict(records, started) or docker
    return docker


def counts_as_healthy(word: str) -> bool:
    """healthy, or no check said otherwise (`hostctl status` ok, the exporter's metric 1)."""
    return word in HEALTHY


_UTC_STAMP = re.compile(r"(\d{4}-\d{2}-\d{2}) (\d{2}):(\d{2}):(\d{2}) UTC")


def parse_timestamp(text: str) -> int | None:
    """systemd's `Tue 2024-05-14 10:00:00 UTC` (printed with TZ=UTC) -> epoch seconds;
    None for "", n/a (never entered) or another zone."""
    found = _UTC_STAMP.search(text)
    if not found:
        return None
    day, hh, mm, ss = found.groups()
    y, mo, dd = (int(p) for p in day.split("-"))
    return calendar.timegm((y, mo, dd, int(hh), int(mm), int(ss), 0, 0, 0))


def parse_verified(text: str) -> int | None:
    """A .verified file's first 20 characters, digits only (as the status script reads it)."""
    digits = "".join(ch for ch in text[:20] if ch.isdigit())
    return int(digits) if digits else None


def parse_state(text: str) -> dict[str, str]:
    """The probe's key=value lines."""
    out = {}
    for line in text.splitlines():
        key, eq, value = line.partition("=")
        if eq and key:
            out[key] = value
    return out


def read_records(health_dir: str) -> tuple[dict[str, dict[str, str]], dict[str, int]]:
    """(unit -> the probe's key=value record, unit -> the gate's time) from HEALTH_DIR;
    missing or unreadable files count as none."""
    states: dict[str, dict[str, str]] = {}
    verified: dict[str, int] = {}
    try:
        names = sorted(os.listdir(health_dir))
    except OSError:
        return states, verified
    for name in names:
        for suffix in (STATE_SUFFIX, VERIFIED_SUFFIX):
            if not name.endswith(suffix) or name == suffix:
                continue
            try:
                with open(os.path.join(health_dir, name), encoding="utf-8",
                          errors="replace") as fh:
                    text = fh.read(4096)
            except OSError:
                continue
            unit = name[:-len(suffix)]
            if suffix == STATE_SUFFIX:
                states[unit] = parse_state(text)
            elif (when := parse_verified(text)) is not None:
                verified[unit] = when
    return states, verified
