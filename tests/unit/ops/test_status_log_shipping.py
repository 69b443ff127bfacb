"""`hostctl status`'s log shipping line from what the status script read on each host: no
extra round trip, and no wait, unless Logstash's counters show failed or rejected events;
then one second reading, SECOND_READING_AFTER seconds later, tells going on from old news."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hostctl.cli import day2 as cli_day2
from hostctl.hosts.unit_show import UnitState
from hostctl.observability.shipping import LogstashStats, stats_argv
from hostctl.ops.status import HostStatus
from hostctl.runner.base import HostUnreachable, Result, timed_out
from hostctl.runner.recording import RecordingRunner
from hostctl.spec.model import Site
from hostctl.validate import load_site

EXAMPLE = Path(__file__).resolve().parents[3] / "inventories" / "site.yml"
LOGSTASH_UNIT = "hostctl-logging-logstash-1.service"


@pytest.fixture(scope="module")
def site() -> Site:
    site = load_site(str(EXAMPLE))
    assert site.inventory.logging is not None and site.inventory.logging.host == "edge-1"
    return site


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waits: list[float] = []
    monkeypatch.setattr(cli_day2.time, "sleep", waits.append)
    return waits


def _edge(stats: LogstashStats | None, active: str = "active") -> HostStatus:
    return HostStatus("edge-1", units={LOGSTASH_UNIT: UnitState(LOGSTASH_UNIT, active=active)},
                      log_drivers={"hostctl-logging-logstash-1": "none"}, logstash=stats)


def _answer(events_in: int, rejected: int, failures: int) -> str:
    """Logstash 8's `_node/stats/pipelines`, trimmed to what is read."""
    output = {"id": "hostctl-elasticsearch",
              "documents": {"successes": events_in - rejected,
                            "non_retryable_failures": rejected},
              "bulk_requests": {"failures": failures}}
    return json.dumps({"pipelines": {"main": {"events": {"in": events_in, "out": events_in},
                                              "plugins": {"outputs": [output]}}}})


def _shipping(site: Site, edge: HostStatus, runner: RecordingRunner) -> str:
    app = HostStatus("app-1", log_drivers={"hostctl-api-1": "gelf"})
    results = {"edge-1": edge, "app-1": app,
               "gpu-1": HostUnreachable("gpu-1", "connection refused", target="gpu-1:22")}
    runners = {"edge-1": runner, "app-1": RecordingRunner("app-1"),
               "gpu-1": results["gpu-1"]}
    return str(cli_day2._log_shipping(site, runners, results))


def test_clean_counters_need_no_second_reading(site: Site, slept: list[float]) -> None:
    edge = RecordingRunner("edge-1")
    verdict = _shipping(site, _edge(LogstashStats(50, 50, 50, 0, 0)), edge)
    assert verdict == "shipping: 50 events in, 50 stored since Logstash started"
    assert slept == [] and edge.calls == []


def test_failures_that_go_on_are_told_by_a_second_reading(site: Site, slept: list[float]
                                                          ) -> None:
    argv = stats_argv(site.inventory.hosts["edge-1"].docker)
    edge = RecordingRunner("edge-1", [(argv, Result(0, _answer(60, 0, 5), ""))])
    verdict = _shipping(site, _edge(LogstashStats(50, 50, 50, 0, 3)), edge)
    assert verdict == ("not shipping: Logstash on edge-1 cannot write to Elasticsearch "
                       "(5 failed bulk requests)")
    assert slept == [cli_day2.SECOND_READING_AFTER] and edge.commands == [argv]


def test_old_failures_are_old_news(site: Site, slept: list[float]) -> None:
    argv = stats_argv(site.inventory.hosts["edge-1"].docker)
    edge = RecordingRunner("edge-1", [(argv, Result(0, _answer(60, 1, 3), ""))])
    verdict = _shipping(site, _edge(LogstashStats(50, 50, 49, 1, 3)), edge)
    assert verdict == "shipping: 60 events in, 59 stored since Logstash started"
    assert slept == [cli_day2.SECOND_READING_AFTER]


def test_logstash_down_is_said_without_reading_again(site: Site, slept: list[float]) -> None:
    edge = RecordingRunner("edge-1")
    verdict = _shipping(site, _edge(LogstashStats(50, 50, 50, 0, 3), active="failed"), edge)
    assert verdict.startswith("not shipping: Logstash on edge-1 is not running")
    assert slept == [] and edge.calls == []


def test_logstash_not_answering(site: Site, slept: list[float]) -> None:
    verdict = _shipping(site, _edge(None), RecordingRunner("edge-1"))
    assert verdict == ("not shipping: Logstash on edge-1 runs but its API does not answer "
                       "(starting, or stuck)")
    assert slept == []


def test_a_second_reading_that_times_out_is_no_answer(site: Site, slept: list[float]) -> None:
    argv = stats_argv(site.inventory.hosts["edge-1"].docker)
    edge = RecordingRunner("edge-1", [(argv, timed_out("edge-1", argv))])
    verdict = _shipping(site, _edge(LogstashStats(50, 50, 50, 0, 3)), edge)
    assert verdict == ("not shipping: Logstash on edge-1 runs but its API does not answer "
                       "(starting, or stuck)")
