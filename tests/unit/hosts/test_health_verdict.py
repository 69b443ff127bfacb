"""The one health rule `hostctl status` and the exporter share (hostctl.hosts.health_verdict): a
table of Docker's state x the probe's record x the deploy's record x the unit's start."""

from __future__ import annotations

from pathlib import Path

import pytest

from hostctl.deploy import health_gate
from hostctl.hosts import health_verdict as hv
from hostctl.layout import HEALTH_DIR

START = 1_000  # the unit's current run started then
NEW, OLD = START + 5, START - 5  # a record made during this run / during the run before

RULES = [
    # docker, probe (health, last_check), deploy gate, unit start -> verdict
    # Docker's own verdict stands whatever hostctl recorded
    ("healthy", ("unhealthy", NEW), None, START, "healthy"),
    ("unhealthy", ("healthy", NEW), NEW, START, "unhealthy"),
    # Docker's check has not run yet: hostctl's latest check of this run
    ("starting", ("", None), NEW, START, "healthy"),  # the deploy just verified it
    ("starting", ("", None), None, START, "starting"),  # nobody checked this run
    ("starting", ("", None), OLD, START, "starting"),  # verified the run before
    ("starting", ("healthy", NEW), None, START, "healthy"),
    ("starting", ("unhealthy", NEW + 1), NEW, START, "unhealthy"),  # the later one counts
    ("starting", ("unhealthy", NEW), NEW + 1, START, "healthy"),
    ("starting", ("unhealthy", NEW), NEW, START, "healthy"),  # a tie: the gate's
    ("starting", ("healthy", OLD), None, START, "starting"),
    ("starting", ("starting", NEW), None, START, "starting"),  # failed in its start period
    ("starting", ("starting", NEW + 1), NEW, START, "starting"),
    ("starting", ("starting", None), NEW, START, "healthy"),  # an old probe's "starting"
    ("starting", ("restarting", NEW), NEW, START, "healthy"),
    # Docker has no check: the same, and "-" when hostctl has no verdict on this run
    (None, ("", None), NEW, START, "healthy"),
    ("-", ("", None), NEW, START, "healthy"),
    (None, ("", None), None, START, "-"),
    (None, ("unhealthy", OLD), None, START, "-"),
    (None, ("unhealthy", NEW), None, START, "unhealthy"),
    (None, ("unhealthy", None), None, START, "unhealthy"),  # a probe record without a time
    (None, ("healthy", None), NEW, START, "healthy"),
    (None, ("inactive", NEW), None, START, "-"),
    # the unit's start unknown: every record counts
    (None, ("unhealthy", OLD), None, None, "unhealthy"),
    ("starting", ("", None), OLD, None, "healthy"),
]


@pytest.mark.parametrize(("docker", "probe", "verified", "started", "want"), RULES)
def test_the_rule(docker: str | None, probe: tuple[str, int | None], verified: int | None,
                  started: int | None, want: str) -> None:
    records = hv.Records(probe[0], probe[1], verified)
    assert hv.verdict(docker, records, started) == want
    assert hv.counts_as_healthy(hv.verdict(docker, records, started)) is (want in ("healthy",
                                                                                    "-"))


def test_records_of_the_probes_lines() -> None:
    assert hv.Records.of({"health": "healthy", "last_check": "1005"}, 7) == \
        hv.Records("healthy", 1005, 7)
    assert hv.Records.of({"health": "starting", "last_check": "0"}, None) == \
        hv.Records("starting", None, None)
    assert hv.Records.of({"last_check": "x"}, None) == hv.Records("", None, None)
    assert hv.Records.of(None, None) == hv.Records()


def test_read_records_reads_the_files_the_probe_and_the_gate_write(tmp_path: Path) -> None:
    (tmp_path / "a.service.state").write_text("health=healthy\nlast_check=1005\nrestarts=2\n")
    (tmp_path / "a.service.verified").write_text("1007\n")
    (tmp_path / "b.service.verified").write_text("garbage\n")
    (tmp_path / "c.service.state.new").write_text("health=unhealthy\n")  # the probe's temp
    (tmp_path / ".state").write_text("health=healthy\n")
    assert hv.read_records(str(tmp_path)) == (
        {"a.service": {"health": "healthy", "last_check": "1005", "restarts": "2"}},
        {"a.service": 1007})
    assert hv.read_records(str(tmp_path / "missing")) == ({}, {})


def test_the_gate_writes_where_the_rule_reads() -> None:
    assert health_gate.verified_path("x.service") == f"{HEALTH_DIR}/x.service{hv.VERIFIED_SUFFIX}"


@pytest.mark.parametrize(("text", "epoch"), [
    ("Tue 2024-05-14 10:00:00 UTC", 1715680800),
    ("", None), ("n/a", None), ("Tue 2024-05-14 12:00:00 CEST", None)])
def test_parse_timestamp(text: str, epoch: int | None) -> None:
    assert hv.parse_timestamp(text) == epoch
