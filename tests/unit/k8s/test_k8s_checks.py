"""hostctl's own checks for what schema validation lets through: input -> exact message."""

from __future__ import annotations

from typing import Any

import pytest

from hostctl.k8s.checks import manifest_problems
from hostctl.spec.secrets import Secret


def pod_of(kind: str, restart: str = "Never", labels: dict[str, Any] | None = None
           ) -> dict[str, Any]:
    pod = {"metadata": {"labels": labels or {}},
           "spec": {"restartPolicy": restart, "containers": [{"name": "c", "ports": [
               {"name": "http", "containerPort": 80}]}]}}
    if kind == "CronJob":
        return {"kind": kind, "metadata": {"name": "x", "namespace": "n"},
                "spec": {"schedule": "0 2 * * *", "jobTemplate": {"spec": {"template": pod}}}}
    return {"kind": kind, "metadata": {"name": "x", "namespace": "n"},
            "spec": {"template": pod}}


@pytest.mark.parametrize(("doc", "messages"), [
    ({"kind": "Namespace", "metadata": {"name": "Shop"}},
     ["Namespace name 'Shop' is not a valid Kubernetes name (RFC 1123 label): use lowercase "
      "letters, digits and '-', starting and ending with a letter or digit"]),
    ({"kind": "Namespace", "metadata": {"name": "a" * 64}},
     [f"Namespace name '{'a' * 64}' is 64 characters long; Kubernetes allows 63"]),
    ({"kind": "Service", "metadata": {"name": "1api", "namespace": "n"}},
     ["Service name '1api' is not a valid RFC 1035 label: Service names start with a letter, "
      "then lowercase letters, digits and '-', at most 63"]),
    ({"kind": "ConfigMap", "metadata": {"name": "a.b-c", "namespace": "n"}}, []),
    ({"kind": "ConfigMap", "metadata": {"name": "a_b", "namespace": "n"}},
     ["ConfigMap name 'a_b' is not a valid Kubernetes name (RFC 1123 subdomain): use "
      "lowercase letters, digits, '-' and '.'"]),
    ({"kind": "CronJob", "metadata": {"name": "c" * 53, "namespace": "n"}, "spec": {
        "schedule": "0 2 * * *"}},
     [f"CronJob name '{'c' * 53}' is 53 characters long; Kubernetes allows 52"]),
    ({"kind": "ConfigMap", "metadata": {"name": "x", "namespace": "n",
                                        "labels": {"io.hostctl/workload": "w" * 64}}},
     ["label 'io.hostctl/workload' value is 64 characters long; at most 63"]),
    ({"kind": "ConfigMap", "metadata": {"name": "x", "namespace": "n",
                                        "labels": {"io.hostctl/site": "-bad"}}},
     ["label 'io.hostctl/site' value '-bad' must be letters, digits, '-', '_' or '.', "
      "starting and ending with a letter or digit"]),
    ({"kind": "ConfigMap", "metadata": {"name": "x", "namespace": "n",
                                        "labels": {"io_hostctl/site": "a"}}},
     ["label key 'io_hostctl/site': the prefix before '/' must be a DNS subdomain"]),
    ({"kind": "ConfigMap", "metadata": {"name": "x", "namespace": "n"}, "data": {"A B": "1"}},
     ["ConfigMap x: key 'A B' must be letters, digits, '-', '_' or '.'"]),
    ({"kind": "ConfigMap", "metadata": {"name": "x", "namespace": "n"},
      "data": {"A": "a" * 2**19, "B": "b" * 2**19}}, []),
    ({"kind": "Secret", "metadata": {"name": "x", "namespace": "n"},
      "stringData": {"A": Secret("A", "a" * 2**19), "B": "b" * (2**19 + 1)}},
     ["Secret x: its values add up to 1048577 bytes; Kubernetes allows 1048576 (1 MiB)"]),
    (pod_of("Job", "Always"), ["a Job's pods need restartPolicy Never or OnFailure, not Always"]),
    (pod_of("CronJob", "Always"),
     ["a CronJob's pods need restartPolicy Never or OnFailure, not Always"]),
    (pod_of("Job", "OnFailure"), []),
    (pod_of("Deployment", "Never"), ["a Deployment's pods need restartPolicy Always, not Never"]),
    ({"kind": "CronJob", "metadata": {"name": "x", "namespace": "n"},
      "spec": {"schedule": "@daily"}}, ["CronJob schedule '@daily' is not five numeric cron "
                                        "fields"]),
])
def test_problems(doc: dict[str, Any], messages: list[str]) -> None:
    assert list(manifest_problems(doc)) == messages


@pytest.mark.parametrize(("name", "ok"), [("http", True), ("p-2", True), ("8080", False),
                                          ("a--b", False), ("metrics-and-more", False),
                                          ("Http", False)])
def test_port_names(name: str, ok: bool) -> None:
    doc = pod_of("Job")
    doc["spec"]["template"]["spec"]["containers"][0]["ports"][0]["name"] = name
    assert (list(manifest_problems(doc)) == []) is ok
