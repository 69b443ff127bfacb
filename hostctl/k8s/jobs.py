"""A hostctl job -> a Job, or a CronJob when it has a schedule.

Shards become an Indexed Job (completions = parallelism = shards, retries per index), so each
shard runs and retries on its own as it does on hosts. A schedule that cron cannot express is
a problem, not a guess.
"""

from __future__ import annotations

from typing import Any

from hostctl.errors import Problem
from hostctl.k8s import checks as kc
from hostctl.k8s.names import meta, namespace_of
from hostctl.k8s.pods import pod_template
from hostctl.k8s.queues import queued
from hostctl.k8s.render_context import RenderContext
from hostctl.k8s.values import seconds
from hostctl.spec import model as m


def job(ctx: RenderContext, w: m.Workload) -> None:
    ns = namespace_of(ctx.cfg, w.project)
    labels = ctx.labels(w)
    pod = pod_template(ctx, w, labels, restart="Never")
    if w.timeout is not None:
        # Per run, like RuntimeMaxSec on hosts: each retry is a new pod with its own time.
        pod["spec"]["activeDeadlineSeconds"] = seconds(ctx, w, "timeout", w.timeout)
    spec: dict[str, Any] = {"template": pod}
    if w.shards > 1:
        spec.update({"completionMode": "Indexed", "completions": w.shards,
                     "parallelism": w.shards, "backoffLimitPerIndex": w.retries})
    else:
        spec["backoffLimit"] = w.retries
    if w.schedule is None:
        # Only the Job's own labels: Kueue reads the queue there; its pods stay as they were.
        ctx.add({"apiVersion": "batch/v1", "kind": "Job",
                 "metadata": meta(w.name, ns, {**labels, **queued(ctx, w)}), "spec": spec},
                kc.origin_of(w))
        return
    cron = kc.cron_schedule(w)
    if isinstance(cron, Problem):
        ctx.problems.append(cron)
        return
    cron_spec: dict[str, Any] = {
        "schedule": cron.schedule,
        # A systemd timer does not start a run while the last one is still going.
        "concurrencyPolicy": "Forbid",
        "jobTemplate": {"metadata": {"labels": {**labels, **queued(ctx, w)}}, "spec": spec},
    }
    zone = cron.time_zone or ctx.cfg.time_zone
    if zone:
        cron_spec["timeZone"] = zone
    else:
        ctx.note(w, "schedule", f"'{w.schedule}' is in each host's local time; the "
                 "CronJob runs in the cluster controller's time zone unless k3s/time_zone "
                 "names one")
    ctx.add({"apiVersion": "batch/v1", "kind": "CronJob",
             "metadata": meta(w.name, ns, labels), "spec": cron_spec},
            kc.origin_of(w, "schedule"))
