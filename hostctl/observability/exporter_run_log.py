"""Ships each finished run's record (not its metric points) to Logstash as GELF, from the
exporter on each host, as exporter_audit ships the audit records: so runs are searched in
Elasticsearch beside their project's logs (the same `hostctl.run` field as the run's own
container logs).

A message carries the record's fields as `_run_<field>`, its parameters as
`_run_param_<NAME>` and its metric summary as `_run_metric_<name>_<last|min|max|n|step>`.
Parameters hold no secret by design (hostctl records the spec's env and --set values, never
secrets, and the docker run line names secrets without their values); nothing else of the
run's directory is read: no env file, no metric points. The records come from the run
history (exporter_runs.Cursor, kept in the exporter's state as `runs_shipped`), at most
MAX_RUNS per look; a look whose records cannot be sent is tried again whole.

Standard library only (it runs in the exporter bundle).
"""

from __future__ import annotations

import json
import re
from typing import Any

from hostctl.jobs.records import CANCELLED, SUCCEEDED, RunRecord
from hostctl.observability.exporter_audit import MAX_DATAGRAM, parse_address, send
from hostctl.observability.exporter_runs import history_path, read_new

MAX_RUNS = 200  # per look: a long history drains over several looks
_PROJECT = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")  # hostctl's names (spec.rules)
# GELF field names are letters, digits, '_', '-' and '.', and Elasticsearch reads a '.' as
# an object path: the other characters metric names may have become '_'.
_NOT_IN_FIELD = re.compile(r"[^A-Za-z0-9_-]")
_TEXT = ("job", "project", "state", "group", "gpus", "exit", "note", "by", "experiment",
         "description", "image", "image_id", "spec_hash", "git_rev", "git_branch", "rerun_of")
_NUMBERS = ("shard", "shards", "need", "cpus", "memory", "attempt", "attempts", "seq",
            "submitted", "started", "ended", "not_before", "metrics_points",
            "metrics_invalid", "metrics_dropped")
# What a message too long for one datagram loses first, in this order.
_SHEDDING = ("_run_docker_run", "_run_param_", "_run_metric_", "_run_description",
             "_run_note")


def field_name(name: str) -> str:
    return _NOT_IN_FIELD.sub("_", name)


def gelf_run_message(r: RunRecord, site: str, host: str) -> dict[str, Any]:
    """One finished run as a GELF message with the labels of its containers' logs."""
    msg: dict[str, Any] = {
        "version": "1.1", "host": host, "level": 6 if r.state in (SUCCEEDED, CANCELLED) else 4,
        "short_message": f"run {r.id} of {r.job or 'a job'} {r.state}"
                         + (f" (experiment {r.experiment})" if r.experiment else ""),
        "_io.hostctl.site": site, "_io.hostctl.host": host, "_io.hostctl.kind": "run",
        "_io.hostctl.run": r.id, "_run_id": r.id,
    }
    if _PROJECT.fullmatch(r.project):  # it names an index: anything else is `unlabelled`
        msg["_io.hostctl.project"] = r.project
    if r.job:
        msg["_io.hostctl.workload"] = r.job
    if r.spec_hash:
        msg["_io.hostctl.spec-hash"] = r.spec_hash
    if r.ended:
        msg["timestamp"] = r.ended / 1000
    for name in _TEXT:
        value = getattr(r, name)
        if value:
            msg[f"_run_{name}"] = value
    for name in _NUMBERS:
        msg[f"_run_{name}"] = getattr(r, name)
    if r.docker_run:
        msg["_run_docker_run"] = json.dumps(r.docker_run)
    for key, value in sorted(r.params.items()):
        msg.setdefault(f"_run_param_{field_name(key)}", value)
    for metric, s in sorted(r.metrics.items()):
        prefix = f"_run_metric_{field_name(metric)}"
        if f"{prefix}_last" in msg:
            continue  # another name that reads the same as a field: the first one kept
        msg.update({f"{prefix}_last": s.last, f"{prefix}_min": s.min, f"{prefix}_max": s.max,
                    f"{prefix}_n": s.count})
        if s.last_step is not None:
            msg[f"{prefix}_step"] = s.last_step
    return msg


def _encoded(msg: dict[str, Any]) -> bytes:
    return json.dumps(msg, sort_keys=True, separators=(",", ":")).encode()


def encode(msg: dict[str, Any]) -> bytes:
    """The message as one datagram: what does not fit is left out (the docker run line,
    parameters, metrics, the texts), and `_run_cut` says so."""
    data = _encoded(msg)
    for prefix in _SHEDDING:
        if len(data) <= MAX_DATAGRAM:
            break
        msg = {k: v for k, v in msg.items() if not k.startswith(prefix)}
        msg["_run_cut"] = 1
        data = _encoded(msg)
    return data


class RunShipper:
    def __init__(self, state_dir: str, address: str, site: str, host: str, state: Any):
        self.path, self.site, self.host, self.state = history_path(state_dir), site, host, state
        self.proto, self.target_host, self.target_port = parse_address(address)

    @classmethod
    def from_conf(cls, conf: Any, state: Any) -> RunShipper | None:
        if not conf.audit:
            return None
        return cls(conf.state_dir, conf.audit["address"], conf.site, conf.host, state)

    def ship(self) -> int:
        """Send the runs that ended since last time; how many were sent."""
        batch = read_new(self.path, self.state.runs_shipped, self.host, MAX_RUNS)
        datagrams = [encode(gelf_run_message(r, self.site, self.host)) for r in batch.new]
        if datagrams:
            try:
                send(self.proto, self.target_host, self.target_port, datagrams)
            except OSError:
                return 0  # Logstash unreachable (tcp): the same runs next time
        self.state.runs_shipped = batch.cursor
        return len(datagrams)
