"""projects: -> Kueue objects: whole objects, the Jobs' queue labels, the report of what
Kueue cannot say, and validation against Kueue's CRDs (tests/rigs/data/kueue_crds/) and the
ClusterQueue webhook's rules: the validator must refuse broken objects too."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from hostctl.k8s.manifests import Rendering, materialize, render_manifests
from hostctl.spec import model as m
from hostctl.spec.sections.k3s import K3sConfig
from hostctl.validate import load_site
from tests.rigs.k8s_validation import crd_problems, strict_problems
from tests.rigs.site_factory import BASE_INVENTORY, make_site

MANAGED = {"app.kubernetes.io/managed-by": "hostctl", "io.hostctl/site": "t"}
TRAIN = ("kind: job\nname: train\nproject: lab\nimage: x:1\nplacement: {hosts: [gpu-1]}\n"
         "resources: gpu_medium\n")
NIGHTLY = ("kind: job\nname: nightly\nproject: lab\nimage: x:1\nschedule: daily\n"
           "placement: {hosts: [app-1]}\n")
WEB = ("kind: service\nname: web\nproject: lab\nimage: x:1\nplacement: {hosts: [app-1]}\n"
       "resources: cpu_small\n")
ETL = "kind: job\nname: etl\nproject: shop\nimage: x:1\nplacement: {hosts: [app-1]}\n"
OTHER = "kind: job\nname: other\nproject: free\nimage: x:1\nplacement: {hosts: [app-1]}\n"

PROJECTS = """\
projects:
  lab:
    gpus: 1
    cpus: 8.5
    memory: 32Gi
    gpu_hours_per_month: 120
    priority: high
    owners: [alice, bob]
  shop: {}
"""


def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, projects: str = PROJECTS,
         specs: tuple[str, ...] = (TRAIN, NIGHTLY, WEB, ETL, OTHER)) -> m.Site:
    monkeypatch.chdir(tmp_path)
    inv = make_site(tmp_path, {f"{i}.yml": text for i, text in enumerate(specs)},
                    inventory=BASE_INVENTORY + projects)
    return load_site(str(inv), environ={})


def objects(r: Rendering, *kinds: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in r.manifests if d["kind"] in kinds}


def test_projects_become_queues_with_their_quota(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    r = render_manifests(site(tmp_path, monkeypatch), K3sConfig(namespace_prefix="t-"))
    got = objects(r, "ResourceFlavor", "WorkloadPriorityClass", "ClusterQueue", "LocalQueue")
    assert sorted(got) == [
        ("ClusterQueue", "t-lab"), ("ClusterQueue", "t-shop"), ("LocalQueue", "lab"),
        ("LocalQueue", "shop"), ("ResourceFlavor", "t-default-flavor"),
        ("WorkloadPriorityClass", "t-high"), ("WorkloadPriorityClass", "t-low"),
        ("WorkloadPriorityClass", "t-normal")]
    api = "kueue.x-k8s.io/v1beta1"
    assert got[("ResourceFlavor", "t-default-flavor")] == {
        "apiVersion": api, "kind": "ResourceFlavor",
        "metadata": {"name": "t-default-flavor", "labels": MANAGED}}
    assert {n: d["value"] for (_, n), d in got.items() if "value" in d} == {
        "t-high": 1000, "t-normal": 500, "t-low": 100}
    lab_labels = {**MANAGED, "io.hostctl/project": "lab"}
    assert got[("ClusterQueue", "t-lab")] == {
        "apiVersion": api, "kind": "ClusterQueue",
        "metadata": {"name": "t-lab", "labels": lab_labels},
        "spec": {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "t-lab"}},
            "resourceGroups": [{
                "coveredResources": ["cpu", "memory", "nvidia.com/gpu"],
                "flavors": [{"name": "t-default-flavor", "resources": [
                    {"name": "cpu", "nominalQuota": "8500m"},
                    {"name": "memory", "nominalQuota": "32Gi"},
                    {"name": "nvidia.com/gpu", "nominalQuota": "1"}]}]}]}}
    # No quota on a resource: covered all the same (Kueue keeps out a Job asking for a
    # resource its queue does not cover), with a quota no cluster reaches.
    shop = got[("ClusterQueue", "t-shop")]["spec"]["resourceGroups"][0]["flavors"][0]
    assert shop["resources"] == [{"name": "cpu", "nominalQuota": "1000000"},
                                 {"name": "memory", "nominalQuota": "1Ei"},
                                 {"name": "nvidia.com/gpu", "nominalQuota": "1000000"}]
    assert got[("LocalQueue", "lab")] == {
        "apiVersion": api, "kind": "LocalQueue",
        "metadata": {"name": "lab", "namespace": "t-lab", "labels": lab_labels},
        "spec": {"clusterQueue": "t-lab"}}


def test_jobs_of_listed_projects_join_their_queue_and_nothing_else_changes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with_queues = render_manifests(site(tmp_path, monkeypatch))
    (tmp_path / "bare").mkdir()
    without = render_manifests(site(tmp_path / "bare", monkeypatch, projects=""))
    a, b = objects(with_queues, "Job", "CronJob"), objects(without, "Job", "CronJob")
    assert sorted(a) == sorted(b)
    queue = {"kueue.x-k8s.io/queue-name": "lab", "kueue.x-k8s.io/priority-class": "high"}
    expected = copy.deepcopy(b)
    expected[("Job", "train")]["metadata"]["labels"].update(queue)
    expected[("CronJob", "nightly")]["spec"]["jobTemplate"]["metadata"]["labels"].update(queue)
    expected[("Job", "etl")]["metadata"]["labels"].update(
        {"kueue.x-k8s.io/queue-name": "shop", "kueue.x-k8s.io/priority-class": "normal"})
    assert a == expected  # `other` (project free, not listed) stays unlabelled
    assert objects(without, "ClusterQueue", "LocalQueue", "ResourceFlavor",
                   "WorkloadPriorityClass") == {}
    # Every other object is the same with and without queues.
    kueue = {"ClusterQueue", "LocalQueue", "ResourceFlavor", "WorkloadPriorityClass",
             "Job", "CronJob"}
    assert ([d for d in with_queues.manifests if d["kind"] not in kueue]
            == [d for d in without.manifests if d["kind"] not in kueue])


def test_what_kueue_cannot_say_is_reported(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    r = render_manifests(site(tmp_path, monkeypatch))
    assert [str(i) for i in r.report if i.path.startswith("projects")] == [
        "site.yml:10: projects: becomes Kueue queues (kueue.x-k8s.io/v1beta1): install Kueue "
        "in the cluster first (a release that serves v1beta1, such as v0.14); without it the "
        "queue objects cannot be applied",
        "site.yml:11: projects/lab: the quota covers the project's Jobs only in the cluster: "
        "Kueue queues Jobs, and the services (web) run as Deployments outside it",
        "site.yml:15: projects/lab/gpu_hours_per_month: 120 GPU-hours per month is not "
        "carried: Kueue has no budget over time, only the concurrent quota (ClusterQueue lab)",
        "site.yml:17: projects/lab/owners: owners alice, bob are not carried: in the cluster, "
        "who may create Jobs in namespace lab is RBAC's to say"]


def test_handing_off_a_service_takes_no_queue_a_job_takes_its_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    r = render_manifests(site(tmp_path, monkeypatch))
    assert objects(r.select(["web"]), "ClusterQueue", "LocalQueue", "ResourceFlavor",
                   "WorkloadPriorityClass") == {}
    assert sorted(objects(r.select(["etl"]), "ClusterQueue", "LocalQueue")) == [
        ("ClusterQueue", "shop"), ("LocalQueue", "shop")]


def test_rendered_queues_pass_kueues_crds(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    r = render_manifests(site(tmp_path, monkeypatch))
    docs = materialize(r.manifests, reveal=False)
    kinds = {d["kind"] for d in docs}
    assert {"ResourceFlavor", "WorkloadPriorityClass", "ClusterQueue", "LocalQueue"} <= kinds
    assert strict_problems([d for d in docs if d["apiVersion"].startswith("kueue")], []) == []


def _cq(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    r = render_manifests(site(tmp_path, monkeypatch))
    return copy.deepcopy(objects(r, "ClusterQueue")[("ClusterQueue", "lab")])


def _flavor(cq: dict[str, Any]) -> dict[str, Any]:
    flavor: dict[str, Any] = cq["spec"]["resourceGroups"][0]["flavors"][0]
    return flavor


BROKEN = [
    pytest.param(lambda cq: cq["spec"].update(queueing="FIFO"),
                 ["spec: Additional properties are not allowed ('queueing' was unexpected)"],
                 id="unknown-field"),
    pytest.param(lambda cq: _flavor(cq)["resources"][0].update(nominalQuota="8 cores"),
                 ["spec/resourceGroups/0/flavors/0/resources/0/nominalQuota: '8 cores' does "
                  "not match '^(\\\\+|-)?(([0-9]+(\\\\.[0-9]*)?)|(\\\\.[0-9]+))(([KMGTPE]i)|"
                  "[numkMGTPE]|([eE](\\\\+|-)?(([0-9]+(\\\\.[0-9]*)?)|(\\\\.[0-9]+))))?$'"],
                 id="bad-quantity"),
    pytest.param(lambda cq: _flavor(cq)["resources"].pop(),
                 ["spec/resourceGroups/0: flavors must have the same number of resources as "
                  "the coveredResources"], id="cel-resources-count"),
    pytest.param(lambda cq: _flavor(cq)["resources"].reverse(),
                 ["spec/resourceGroups/0/flavors/0/resources/0/name: must match the name in "
                  "coveredResources",
                  "spec/resourceGroups/0/flavors/0/resources/2/name: must match the name in "
                  "coveredResources"], id="webhook-resource-order"),
    pytest.param(lambda cq: _flavor(cq)["resources"][1].update(nominalQuota="-1Gi"),
                 ["spec/resourceGroups/0/flavors/0/resources/1/nominalQuota: must be greater "
                  "than or equal to 0"], id="webhook-negative-quota"),
    pytest.param(lambda cq: cq["spec"]["resourceGroups"].append(
                     copy.deepcopy(cq["spec"]["resourceGroups"][0])),
                 ["spec/resourceGroups/1/coveredResources/0: Duplicate value: 'cpu'",
                  "spec/resourceGroups/1/coveredResources/1: Duplicate value: 'memory'",
                  "spec/resourceGroups/1/coveredResources/2: Duplicate value: 'nvidia.com/gpu'",
                  "spec/resourceGroups/1/flavors/0/name: Duplicate value: 'default-flavor'"],
                 id="webhook-duplicates"),
    pytest.param(lambda cq: _flavor(cq)["resources"][0].update(borrowingLimit="1"),
                 ["spec: borrowingLimit must be nil when cohort is empty"],
                 id="cel-borrowing-without-cohort"),
]


@pytest.mark.parametrize(("breaks", "expected"), BROKEN)
def test_the_validator_refuses_what_kueue_refuses(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  breaks: Any, expected: list[str]) -> None:
    cq = _cq(tmp_path, monkeypatch)
    assert crd_problems(cq) == []
    breaks(cq)
    assert crd_problems(cq) == expected


def test_the_validator_refuses_broken_queues_and_classes() -> None:
    api = "kueue.x-k8s.io/v1beta1"
    assert crd_problems({"apiVersion": api, "kind": "WorkloadPriorityClass",
                         "metadata": {"name": "high"}}) == [".: 'value' is a required property"]
    assert crd_problems({"apiVersion": api, "kind": "LocalQueue", "metadata": {"name": "q"},
                         "spec": {"clusterQueue": "Bad_Name"}}) == [
        "spec/clusterQueue: 'Bad_Name' does not match "
        "'^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$'"]


def test_a_sharded_job_the_quota_cannot_hold_whole_is_reported(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sharded = TRAIN.replace("gpu_medium", "{cpus: 2, memory: 9Gi, gpus: 1}") + "shards: 4\n"
    # etl-4's 4 x 2 CPUs fit lab's 8.5: not reported
    lab_only = PROJECTS.replace("  shop: {}\n", "")
    r = render_manifests(site(tmp_path, monkeypatch, lab_only, specs=(sharded, ETL.replace(
        "etl", "etl-4").replace("shop", "lab") + "shards: 4\nresources: {cpus: 2}\n")))
    assert [str(i) for i in r.report if i.path == "shards"] == [
        "specs/0.yml:7: shards: Kueue admits the Indexed Job's 4 shards together and the "
        "project's quota cannot hold them (4 x 1 GPU(s) > 1 GPU(s); 4 x 9Gi memory > 32Gi): "
        "in the cluster it would wait for ever; lower shards or raise the quota (hosts run "
        "the shards one run at a time as the quota leaves room)"]
