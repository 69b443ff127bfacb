"""projects: -> Kueue objects: whole objects, the Jobs' queue labels, the report of what
Kueue cannot say, and validation against Kueue's CRDs (tests/rigs/data/kueue_crds/) and the
ClusterQueue webhook's rules: the validator must refuse broken objects too."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from hostctl.errors import ConfigError
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


# -- GPU models: one ResourceFlavor per model ------------------------------------------------

MODELS = "gpus: [{model: a100-80g, count: 1}, {model: l4, count: 1}]"
L4_JOB = ("kind: job\nname: tune\nproject: lab\nimage: x:1\nplacement: {hosts: [gpu-1]}\n"
          "resources: {cpus: 1, memory: 1Gi, gpus: 1, gpu_model: l4}\n")
EITHER_JOB = ("kind: job\nname: sweep\nproject: lab\nimage: x:1\nplacement: {hosts: [gpu-1]}\n"
              "resources: {cpus: 1, memory: 1Gi, gpus: 1, gpu_model: [l4, a100-80g]}\n")


def model_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hosts: str = MODELS,
               app_gpus: str = "", specs: tuple[str, ...] = (TRAIN, L4_JOB, EITHER_JOB, ETL),
               projects: str = PROJECTS) -> m.Site:
    monkeypatch.chdir(tmp_path)
    inventory = BASE_INVENTORY.replace("{role: gpu}, gpus: 1}", "{role: gpu}, " + hosts + "}"
                                       ).replace(
        "labels: {role: app}}", "labels: {role: app}" + app_gpus + "}")
    inv = make_site(tmp_path, {f"{i}.yml": text for i, text in enumerate(specs)},
                    inventory=inventory + projects)
    return load_site(str(inv), environ={})


def flavor(name: str, model: str | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"apiVersion": "kueue.x-k8s.io/v1beta1", "kind": "ResourceFlavor",
                           "metadata": {"name": name, "labels": MANAGED}}
    if model is not None:
        doc["spec"] = {"nodeLabels": {"nvidia.com/gpu.product": model}}
    return doc


def gpu_group(quota: str, *flavors: str) -> dict[str, Any]:
    return {"coveredResources": ["nvidia.com/gpu"], "flavors": [
        {"name": f, "resources": [{"name": "nvidia.com/gpu", "nominalQuota": quota}]}
        for f in flavors]}


@pytest.mark.parametrize(("app_gpus", "flavors"), [
    # every GPU has a model: a flavor per model
    ("", {"t-default-flavor": None, "t-gpu-a100-80g": "a100-80g", "t-gpu-l4": "l4"}),
    # app-1's GPU has none: default-gpu-flavor for it, after the models
    (", gpus: 1", {"t-default-flavor": None, "t-gpu-a100-80g": "a100-80g",
                   "t-gpu-l4": "l4", "t-default-gpu-flavor": None}),
])
def test_a_flavor_per_gpu_model_and_two_resource_groups(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, app_gpus: str,
        flavors: dict[str, str | None]) -> None:
    r = render_manifests(model_site(tmp_path, monkeypatch, app_gpus=app_gpus),
                         K3sConfig(namespace_prefix="t-"))
    got = objects(r, "ResourceFlavor")
    assert got == {("ResourceFlavor", name): flavor(name, model)
                   for name, model in flavors.items()}
    gpu_flavors = [f for f in flavors if f != "t-default-flavor"]
    cq = objects(r, "ClusterQueue")
    assert cq[("ClusterQueue", "t-lab")]["spec"]["resourceGroups"] == [
        {"coveredResources": ["cpu", "memory"], "flavors": [
            {"name": "t-default-flavor", "resources": [
                {"name": "cpu", "nominalQuota": "8500m"},
                {"name": "memory", "nominalQuota": "32Gi"}]}]},
        gpu_group("1", *gpu_flavors)]
    assert cq[("ClusterQueue", "t-shop")]["spec"]["resourceGroups"][1] == \
        gpu_group("1000000", *gpu_flavors)
    docs = materialize(r.manifests, reveal=False)
    assert strict_problems([d for d in docs if d["apiVersion"].startswith("kueue")], []) == []


def test_jobs_asking_a_model_select_its_nodes(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    r = render_manifests(model_site(tmp_path, monkeypatch))
    pods = {name: d["spec"]["template"]["spec"] for (_, name), d in objects(r, "Job").items()}
    assert pods["tune"]["nodeSelector"] == {"nvidia.com/gpu.product": "l4"}
    assert "affinity" not in pods["tune"]
    assert pods["sweep"]["affinity"] == {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "nvidia.com/gpu.product", "operator": "In",
                                   "values": ["l4", "a100-80g"]}]}]}}}
    assert "nodeSelector" not in pods["sweep"]
    # no model asked: no selector (Kueue adds the flavor's node labels when it admits it)
    assert "nodeSelector" not in pods["train"] and "affinity" not in pods["train"]
    assert strict_problems(materialize(r.manifests, reveal=False), []) == []


def test_a_service_asking_a_model_runs_on_its_nodes(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A Deployment is no Kueue workload, but its pods need the model's nodes all the same."""
    infer = ("kind: service\nname: infer\nproject: lab\nimage: x:1\n"
             "placement: {hosts: [gpu-1]}\nresources: {gpus: 1, gpu_model: a100-80g}\n")
    r = render_manifests(model_site(tmp_path, monkeypatch, specs=(TRAIN, ETL, infer)))
    pod = objects(r, "Deployment")[("Deployment", "infer")]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "a100-80g"}


def test_without_models_the_queues_stay_one_group(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    r = render_manifests(model_site(tmp_path, monkeypatch, hosts="gpus: 2", specs=(TRAIN, ETL)))
    assert sorted(objects(r, "ResourceFlavor")) == [("ResourceFlavor", "default-flavor")]
    groups = objects(r, "ClusterQueue")[("ClusterQueue", "lab")]["spec"]["resourceGroups"]
    assert [g["coveredResources"] for g in groups] == [["cpu", "memory", "nvidia.com/gpu"]]


def test_the_gpu_quota_per_flavor_is_reported(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    r = render_manifests(model_site(tmp_path, monkeypatch))
    assert [str(i) for i in r.report if i.path == "projects/lab/gpus"] == [
        "site.yml:12: projects/lab/gpus: 1 GPU(s) at once is carried per GPU flavor "
        "(gpu-a100-80g, gpu-l4): Kueue has no quota across flavors, so in the cluster the "
        "project may hold 1 of each at once, up to 2 in all"]
    (tmp_path / "mixed").mkdir()
    mixed = render_manifests(model_site(tmp_path / "mixed", monkeypatch, app_gpus=", gpus: 1"))
    assert [str(i) for i in mixed.report if i.path == "projects/lab/gpus"] == [
        "site.yml:12: projects/lab/gpus: 1 GPU(s) at once is carried per GPU flavor "
        "(gpu-a100-80g, gpu-l4, default-gpu-flavor): Kueue has no quota across flavors, so "
        "in the cluster the project may hold 1 of each at once, up to 3 in all; and "
        "default-gpu-flavor selects no nodes (the GPUs of hosts naming no model), so a Job "
        "asking a model whose flavor is full may be counted there"]
    (tmp_path / "one").mkdir()
    one = render_manifests(model_site(tmp_path / "one", monkeypatch,
                                      hosts="gpus: [{model: l4, count: 1}]", specs=(TRAIN, ETL)))
    assert [i for i in one.report if i.path == "projects/lab/gpus"] == []


@pytest.mark.parametrize(("hosts", "expected"), [
    # a model name hostctl takes that Kubernetes does not take as a label value or name
    ("gpus: [{model: l4., count: 1}, {model: a100-.80g, count: 1}]",
     ["site.yml:4: hosts/gpu-1/gpus: GPU model 'a100-.80g' cannot name a Kueue ResourceFlavor "
      "in a cluster (gpu-<model>, a DNS name: each part between dots starts and ends with a "
      "letter or digit); rename it, e.g. 'a100.80g'",
      "site.yml:4: hosts/gpu-1/gpus: GPU model 'l4.' cannot name a Kueue ResourceFlavor in a "
      "cluster (gpu-<model>, a DNS name: each part between dots starts and ends with a "
      "letter or digit); rename it, e.g. 'l4'"]),
    (MODELS + "}\nk3s: {gpu_products: {l4: NVIDIA-L4, t4: NVIDIA-T4}",
     ["site.yml:5: k3s/gpu_products/t4: no host names GPU model 't4' (the hosts' models: "
      "a100-80g, l4); fix the name or remove it"]),
    ("gpus: [" + ", ".join(f"{{model: m{i}, count: 1}}" for i in range(17)) + "]",
     ["site.yml:2: hosts: the hosts name 17 GPU flavors (gpu-m0, gpu-m1, gpu-m10, gpu-m11, "
      "gpu-m12, gpu-m13, gpu-m14, gpu-m15, gpu-m16, gpu-m2, gpu-m3, gpu-m4, gpu-m5, gpu-m6, "
      "gpu-m7, gpu-m8, gpu-m9), and a Kueue ClusterQueue takes at most 16 flavors for "
      "nvidia.com/gpu: name fewer models (several products may share a model name)"]),
])
def test_gpu_flavors_kubernetes_or_kueue_would_refuse_are_refused_by_validate(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hosts: str,
        expected: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        model_site(tmp_path, monkeypatch, hosts=hosts, specs=(TRAIN, ETL))
    assert sorted(str(p) for p in err.value.problems) == expected


def test_gpu_products_map_models_to_the_nodes_label(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The model's flavor and the Jobs asking it select k3s/gpu_products' value (as NVIDIA's
    GPU feature discovery labels the nodes); a model not mapped selects its own name."""
    hosts = MODELS + "}\nk3s: {gpu_products: {a100-80g: NVIDIA-A100-SXM4-80GB}"
    r = render_manifests(model_site(tmp_path, monkeypatch, hosts=hosts))
    flavors = objects(r, "ResourceFlavor")
    assert {n: d.get("spec") for (_, n), d in flavors.items()} == {
        "default-flavor": None,
        "gpu-a100-80g": {"nodeLabels": {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}},
        "gpu-l4": {"nodeLabels": {"nvidia.com/gpu.product": "l4"}}}
    pods = {name: d["spec"]["template"]["spec"] for (_, name), d in objects(r, "Job").items()}
    assert pods["tune"]["nodeSelector"] == {"nvidia.com/gpu.product": "l4"}
    terms = pods["sweep"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms[0]["matchExpressions"][0]["values"] == ["l4", "NVIDIA-A100-SXM4-80GB"]


def test_the_k3s_examples_gpu_products_validate_on_a_site_with_those_models(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """k8s/k3s.example.yml leaves gpu_products commented out (the worked example names no
    models): on hosts naming those models, the line validates and means what it says."""
    example = (Path(__file__).resolve().parents[3] / "k8s" / "k3s.example.yml").read_text()
    line = "  # gpu_products: {a100-80g: NVIDIA-A100-SXM4-80GB, l4: NVIDIA-L4}\n"
    assert line in example
    site_ = model_site(tmp_path, monkeypatch, projects=PROJECTS + "k3s:\n"
                       + line.replace("# ", "", 1))
    assert site_.inventory.k3s.gpu_products == {"a100-80g": "NVIDIA-A100-SXM4-80GB",
                                                "l4": "NVIDIA-L4"}
