"""What status says about log shipping: parsers of the log drivers and of Logstash's
pipeline stats, and the verdict as a table of situations -> exact words."""

from __future__ import annotations

import json

import pytest

from hostctl.observability.shipping import (
    LogstashStats,
    Shipping,
    parse_drivers,
    parse_stats,
    second_reading_needed,
    shipping_state,
    stats_argv,
)
from hostctl.spec.sections.logging import LoggingConfig

CFG = LoggingConfig(host="edge-1")

# The shape of Logstash 8's GET /_node/stats/pipelines (trimmed to what is read, plus some).
STATS = {
    "host": "abc", "version": "8.15.3",
    "pipelines": {"main": {
        "events": {"in": 120, "out": 118, "filtered": 118, "duration_in_millis": 50},
        "plugins": {
            "inputs": [{"id": "hostctl-gelf", "name": "gelf", "events": {"out": 120}}],
            "filters": [],
            "outputs": [{"id": "hostctl-elasticsearch", "name": "elasticsearch",
                         "events": {"in": 118, "out": 118},
                         "documents": {"successes": 117, "non_retryable_failures": 1},
                         "bulk_requests": {"successes": 9, "responses": {"200": 9},
                                           "failures": 2}}],
        },
    }},
}


def test_parse_stats() -> None:
    assert parse_stats(json.dumps(STATS)) == LogstashStats(120, 118, 117, 1, 2)
    assert parse_stats("curl: (7) Failed to connect") is None
    assert parse_stats('{"pipelines": {}}') is None


def test_parse_drivers_and_commands() -> None:
    assert parse_drivers("/hostctl-api-1 gelf\n/hostctl-job-x-r1 journald\n\n") == {
        "hostctl-api-1": "gelf", "hostctl-job-x-r1": "journald"}
    assert stats_argv("/usr/bin/docker") == [
        "/usr/bin/docker", "exec", "hostctl-logging-logstash-1", "curl", "-s", "-m", "5",
        "http://127.0.0.1:9600/_node/stats/pipelines"]


@pytest.mark.parametrize(("first", "needed"), [
    (None, False),  # no answer: nothing a second reading would be compared with
    (LogstashStats(10, 10, 10, 0, 0), False),  # nothing ever failed: one reading says it
    (LogstashStats(10, 10, 9, 1, 0), True),  # rejected since start: still, or long ago?
    (LogstashStats(10, 10, 10, 0, 3), True),  # failed bulk requests since start: the same
])
def test_a_second_reading_only_when_failures_need_telling_apart(
        first: LogstashStats | None, needed: bool) -> None:
    assert second_reading_needed(first) is needed


OK = LogstashStats(10, 10, 10, 0, 0)
CASES = [
    (None, {}, True, OK, None, "off: containers log to journald on their hosts"),
    (CFG, {}, False, None, None,
     "not shipping: Logstash on edge-1 is not running; containers keep running and `hostctl "
     "logs` still works, but nothing reaches Elasticsearch"),
    (CFG, {}, True, None, None,
     "not shipping: Logstash on edge-1 runs but its API does not answer (starting, or stuck)"),
    (CFG, {}, True, LogstashStats(12, 10, 10, 0, 3), OK,
     "not shipping: Logstash on edge-1 cannot write to Elasticsearch (3 failed bulk requests)"),
    (CFG, {}, True, LogstashStats(12, 12, 10, 2, 0), OK,
     "partly: Elasticsearch rejects events (2 so far; see Logstash's journal for the mapping "
     "error)"),
    (CFG, {"app-1": {"hostctl-api-1": "journald", "hostctl-api-2": "gelf"},
           "edge-1": {"hostctl-logging-logstash-1": "none"}}, True, OK, OK,
     "partly: 1 container(s) still log elsewhere until their next deploy: app-1/hostctl-api-1"),
    (CFG, {"app-1": {"hostctl-api-1": "gelf"}}, True, OK, OK,
     "shipping: 10 events in, 10 stored since Logstash started"),
]


@pytest.mark.parametrize(("cfg", "drivers", "running", "stats", "earlier", "expected"), CASES)
def test_verdicts(cfg: LoggingConfig | None, drivers: dict[str, dict[str, str]],
                  running: bool, stats: LogstashStats | None, earlier: LogstashStats | None,
                  expected: str) -> None:
    verdict = shipping_state(cfg, drivers, running, stats, earlier)
    assert isinstance(verdict, Shipping) and str(verdict) == expected
