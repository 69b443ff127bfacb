"""Is anything being shipped? What `hostctl status` can say about log shipping, from two
readings taken over SSH, both in the status script's one round trip: the log driver of each
hostctl container (on every host), and Logstash's own event counters (on the logging host,
through `docker exec`, so no port is published for it). Shell jobs and pure parsers, like
every other fact hostctl reads.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hostctl.spec.sections.logging import LOGSTASH_WORKLOAD, LoggingConfig

LOGSTASH_CONTAINER = f"hostctl-{LOGSTASH_WORKLOAD}-1"
STATS_URL = "http://127.0.0.1:9600/_node/stats/pipelines"
STATS_TIMEOUT = 10  # seconds for the status script's reading (curl's own bound is 5)


def drivers_job(docker: str, into: str) -> str:
    """A background shell job that writes each hostctl container's name and log driver, one
    per line, into the file `into` (a shell word)."""
    d = shlex.quote(docker)
    return (f"( ids=$({d} ps -q --filter label=io.hostctl.managed=true); "
            f"[ -z \"$ids\" ] || {d} inspect -f "
            "'{{.Name}} {{.HostConfig.LogConfig.Type}}' $ids "
            f">{into} 2>/dev/null ) &")


def parse_drivers(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        name, _, driver = line.strip().partition(" ")
        if name and driver:
            out[name.lstrip("/")] = driver
    return out


def stats_argv(docker: str) -> list[str]:
    """Logstash's pipeline counters, read inside its container (the image has curl)."""
    return [docker, "exec", LOGSTASH_CONTAINER, "curl", "-s", "-m", "5", STATS_URL]


def stats_job(docker: str, into: str) -> str:
    """A background shell job that writes Logstash's counters (stats_argv) into the file
    `into` (a shell word) when it answers, and nothing when it does not. Bounded: a stuck
    `docker exec` must not hold up the rest of the host's status."""
    argv = " ".join(shlex.quote(a) for a in stats_argv(docker))
    return (f"( timeout {STATS_TIMEOUT} {argv} >{into}.part 2>/dev/null "
            f"&& mv {into}.part {into} ) &")


@dataclass(frozen=True)
class LogstashStats:
    events_in: int
    events_out: int
    documents: int  # accepted by Elasticsearch
    rejected: int  # refused by Elasticsearch for good (mapping errors and the like)
    failing_requests: int  # bulk requests that failed (Elasticsearch unreachable, ...)


def _plugin(plugins: Any, plugin_id: str) -> dict[str, Any]:
    return next((p for p in plugins or [] if p.get("id") == plugin_id), {})


def parse_stats(text: str) -> LogstashStats | None:
    """`_node/stats/pipelines` -> counters of hostctl's pipeline; None if unreadable."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    pipelines = data.get("pipelines") if isinstance(data, dict) else None
    if not isinstance(pipelines, dict) or not pipelines:
        return None
    events_in = events_out = documents = rejected = failing = 0
    for pipeline in pipelines.values():
        events = pipeline.get("events") or {}
        events_in += int(events.get("in") or 0)
        events_out += int(events.get("out") or 0)
        out = _plugin((pipeline.get("plugins") or {}).get("outputs"), "hostctl-elasticsearch")
        docs = out.get("documents") or {}
        documents += int(docs.get("successes") or 0)
        rejected += int(docs.get("non_retryable_failures") or 0)
        failing += int((out.get("bulk_requests") or {}).get("failures") or 0)
    return LogstashStats(events_in, events_out, documents, rejected, failing)


@dataclass(frozen=True)
class Shipping:
    state: str  # "off" | "shipping" | "not shipping" | "partly"
    detail: str

    def __str__(self) -> str:
        return f"{self.state}: {self.detail}" if self.detail else self.state


def second_reading_needed(first: LogstashStats | None) -> bool:
    """Whether a second reading of Logstash's counters a few seconds after `first` could
    change the verdict: only failed or rejected events since Logstash started can be old
    news or going on now (shipping_state tells them apart by a rise between the two)."""
    return first is not None and (first.failing_requests > 0 or first.rejected > 0)


def shipping_state(cfg: LoggingConfig | None, drivers: Mapping[str, Mapping[str, str]],
                   logstash_running: bool, stats: LogstashStats | None,
                   earlier: LogstashStats | None = None) -> Shipping:
    """One verdict for the site. `drivers`: host -> container -> log driver; `earlier`: a
    reading a few seconds before `stats`, to tell a stalled output from a quiet site."""
    if cfg is None:
        return Shipping("off", "containers log to journald on their hosts")
    where = f"Logstash on {cfg.host}"
    if not logstash_running:
        return Shipping("not shipping", f"{where} is not running; containers keep running "
                                        "and `hostctl logs` still works, but nothing reaches "
                                        "Elasticsearch")
    if stats is None:
        return Shipping("not shipping", f"{where} runs but its API does not answer (starting, "
                                        "or stuck)")
    if earlier is not None and stats.failing_requests > earlier.failing_requests:
        return Shipping("not shipping", f"{where} cannot write to Elasticsearch "
                                        f"({stats.failing_requests} failed bulk requests)")
    if earlier is not None and stats.rejected > earlier.rejected:
        return Shipping("partly", f"Elasticsearch rejects events ({stats.rejected} so far; "
                                  "see Logstash's journal for the mapping error)")
    old = sorted(f"{host}/{name}" for host, containers in drivers.items()
                 for name, driver in containers.items() if driver != "gelf"
                 and not name.startswith("hostctl-logging-"))
    if old:
        shown = ", ".join(old[:3]) + (f" and {len(old) - 3} more" if len(old) > 3 else "")
        return Shipping("partly", f"{len(old)} container(s) still log elsewhere until their "
                                  f"next deploy: {shown}")
    return Shipping("shipping", f"{stats.events_in} events in, {stats.documents} stored since "
                                "Logstash started")
